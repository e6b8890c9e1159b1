// The hardware catalogue: what one accelerator (or one CPU server) holds, moves and costs.
// Its data lives in config/hardware.yaml, compiled into the binary at build time; a user file
// given with --hardware adds devices or replaces them by name.
//
//   auto cat = moat::planner::builtin_catalogue();
//   cat.merge_yaml_file("my-hardware.yaml");       // throws plan_error with the key at fault
//   const device& d = cat.find("h100-80g");        // throws plan_error listing the known names
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace moat::planner {

struct device {
  std::string name;
  std::string description;
  bool is_cpu = false;             // a CPU server: "memory" is host RAM, no host offload
  double memory_gib = 0;           // usable device memory, as nvidia-smi reports it
  double bandwidth_gbps = 0;       // memory bandwidth, GB/s (1e9)
  double compute_tflops = 0;       // dense fp16/bf16 matrix throughput, TFLOP/s
  double interconnect_gbps = 0;    // device-to-device, per direction, GB/s
  double host_link_gbps = 0;       // device-to-host (PCIe), per direction, GB/s
  double power_w = 0;              // board power of one device
  double price_usd = 0;            // one device
  int per_node = 1;                // devices in one server
  double node_price_usd = 0;       // the server around them (CPUs, RAM, NICs, chassis)
  double node_power_w = 0;         // the server's own draw, devices excluded
  double host_memory_gib = 0;      // host RAM per server (room for an offloaded KV cache)
  double runtime_overhead_gib = 0; // per device: context, library workspaces, comm buffers
  double decode_bandwidth_efficiency = 0;  // the catalogue's default factors (see speed.h)
  double prefill_compute_efficiency = 0;

  double memory_bytes() const { return memory_gib * 1024.0 * 1024.0 * 1024.0; }
};

class catalogue {
 public:
  // Parses `text` (YAML with a top-level `devices:` map) and adds or replaces its devices.
  // `source` names the text in error messages.
  void merge_yaml(std::string_view text, const std::string& source);
  void merge_yaml_file(const std::string& path);

  const device& find(std::string_view name) const;
  const std::map<std::string, device>& devices() const { return devices_; }

 private:
  std::map<std::string, device> devices_;
};

// The catalogue compiled from config/hardware.yaml.
catalogue builtin_catalogue();
std::string_view builtin_catalogue_yaml();

}  // namespace moat::planner
