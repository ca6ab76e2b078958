// The C ABI from a C client (c_abi_client.c): status codes, messages, and the same actions as C++.
#include "c_abi_client.h"
#include "harness.hpp"
#include "support.hpp"

TT_TEST(c_abi, a_missing_bundle_is_a_typed_error_with_a_message) {
  tt_test::TempDir empty;
  CHECK_EQ(c_client_missing_bundle(empty.path().c_str()), 0);
}

TT_TEST(c_abi, a_c_client_gets_the_cpp_actions) {
  const std::string bundle = tt_test::bundle_or_skip();
  ttdeploy::Options options;
  options.num_threads = 1;
  ttdeploy::Runtime rt(bundle, options);
  auto call = tt_test::make_call(rt, rt.active(), 9);
  std::fill(call.task_obs.begin(), call.task_obs.end(), 0.0f);  // the C client passes zeros
  std::vector<tt_deploy_input> inputs;
  const auto views = call.inputs();
  for (const auto& x : views) {
    inputs.push_back({x.name.data(), x.dtype == ttdeploy::DType::boolean ? TT_DEPLOY_BOOL : TT_DEPLOY_FLOAT32, x.data,
                      x.count});
  }
  std::vector<float> out(rt.action_dim());
  CHECK_EQ(c_client_run(bundle.c_str(), inputs.data(), inputs.size(), out.data(), out.size()), 0);
  CHECK(out == tt_test::act(rt, call));
}
