#include "tp_upload.h"

namespace moat::cuda {

device_shard upload_tp_shard(const engine::loaded_model& model, const engine::tp_plan& plan, int32_t rank,
                             const std::string& format, int32_t int4_group, cudaStream_t stream) {
  // The host shard's row-parallel copies live in `host.owned` until this function returns;
  // upload_weight synchronizes the stream, so they are no longer read when they are freed.
  engine::tp_shard host = engine::make_tp_shard(model, plan, rank);
  device_shard d;
  d.rank = rank;
  d.config = host.config;
  d.vocab = host.vocab;
  d.final_norm = upload_f32(host.weights.final_norm, stream);
  d.lm_head = upload_weight(host.weights.lm_head, format, int4_group, stream);
  d.layers.reserve(host.weights.layers.size());
  for (const auto& l : host.weights.layers) {
    device_layer dl;
    dl.attn_norm = upload_f32(l.attn_norm, stream);
    dl.ffn_norm = upload_f32(l.ffn_norm, stream);
    dl.wq = upload_weight(l.wq, format, int4_group, stream);
    dl.wk = upload_weight(l.wk, format, int4_group, stream);
    dl.wv = upload_weight(l.wv, format, int4_group, stream);
    dl.wo = upload_weight(l.wo, format, int4_group, stream);
    dl.w_gate = upload_weight(l.w_gate, format, int4_group, stream);
    dl.w_up = upload_weight(l.w_up, format, int4_group, stream);
    dl.w_down = upload_weight(l.w_down, format, int4_group, stream);
    d.layers.push_back(std::move(dl));
  }
  return d;
}

}  // namespace moat::cuda
