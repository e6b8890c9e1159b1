// Test helper: asserts that a parse result is the expected 400 error.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "openai/protocol.h"

namespace moat::openai::testing {

// Returns the error (or a default one after recording a failure) so tests can check more.
template <class Result>
api_error expect_invalid(const Result& result, const std::string& param) {
  const auto* error = std::get_if<api_error>(&result);
  if (error == nullptr) {
    ADD_FAILURE() << "expected a 400 naming '" << param << "', but the request parsed";
    return {};
  }
  EXPECT_EQ(error->status, 400);
  EXPECT_EQ(error->type, "invalid_request_error");
  EXPECT_TRUE(error->param.has_value()) << error->message;
  if (error->param) {
    EXPECT_EQ(*error->param, param) << error->message;
  }
  EXPECT_FALSE(error->message.empty());
  return *error;
}

template <class Request, class Result>
const Request& expect_ok(const Result& result) {
  if (const auto* error = std::get_if<api_error>(&result)) {
    ADD_FAILURE() << "unexpected error: " << error->message << " (param "
                  << error->param.value_or("null") << ")";
    static const Request empty{};
    return empty;
  }
  return std::get<Request>(result);
}

}  // namespace moat::openai::testing
