// The call path allocates nothing: every operator new of this process is counted (a replaced global
// operator new), except inside the graph run itself, which belongs to the inference library.
//
// Own executable: replacing the global operator new affects every test linked with it. When it fails, rerun
// it with TT_DEPLOY_TRAP_ALLOCATION=1 under gdb: the backtrace names the allocating line.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "harness.hpp"
#include "c_api_internal.hpp"
#include "support.hpp"
#include "tt_deploy/tt_deploy.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<long> ours{0}, library{0};  // allocations outside / inside a graph run
// set for the length of a graph run, for every thread: OpenVINO runs the graph on its own worker threads
std::atomic<bool> in_graph_run{false};

void* counted(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) ++(in_graph_run.load() ? library : ours);
  // TT_DEPLOY_TRAP_ALLOCATION=1: stop at the runtime's first allocation, for `gdb -ex run -ex bt`
  if (counting.load() && !in_graph_run.load() && std::getenv("TT_DEPLOY_TRAP_ALLOCATION")) __builtin_trap();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return counted(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

struct Counts {
  long ours, library;
};

template <typename Body>
Counts count_allocations(Body&& body) {
  ours = 0;
  library = 0;
  counting = true;
  body();
  counting = false;
  return {ours.load(), library.load()};
}

std::shared_ptr<tt_test::RunHooks> marking_hooks() {
  auto hooks = std::make_shared<tt_test::RunHooks>();
  hooks->before_run = [] { in_graph_run = true; };
  hooks->after_run = [] { in_graph_run = false; };
  return hooks;
}

}  // namespace

TT_TEST(no_allocation, act_into_and_switch_allocate_nothing_of_their_own) {
  const std::string bundle = tt_test::bundle_or_skip();
  ttdeploy::Options options;
  options.num_threads = 1;
  ttdeploy::Runtime rt(bundle, options, tt_test::hooked_openvino(marking_hooks()));
  std::vector<tt_test::Call> calls;
  std::vector<std::vector<ttdeploy::Input>> views;
  for (const auto& skill : rt.skills()) calls.push_back(tt_test::make_call(rt, skill, 11));
  for (const auto& call : calls) views.push_back(call.inputs());
  std::vector<float> out(rt.action_dim());
  auto every_skill = [&](int rounds) {
    for (int r = 0; r < rounds; ++r) {
      for (std::size_t s = 0; s < calls.size(); ++s) {
        rt.switch_skill(rt.skills()[s]);
        rt.act_into(views[s], calls[s].task_obs.data(), calls[s].task_obs.size(), out.data(), out.size());
      }
    }
  };
  every_skill(3);  // warm-up: OpenVINO's first runs
  const int rounds = 100;
  const auto start = std::chrono::steady_clock::now();
  const Counts counts = count_allocations([&] { every_skill(rounds); });
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count();
  const double calls_made = static_cast<double>(rounds * calls.size());
  std::printf("%.0f calls: %ld allocations by the runtime, %.1f per call inside OpenVINO's infer(); %.1f us a call\n",
              calls_made, counts.ours, counts.library / calls_made, us / calls_made);
  CHECK_EQ(counts.ours, 0L);
}

TT_TEST(no_allocation, the_c_abi_call_allocates_nothing_of_its_own) {
  const std::string bundle = tt_test::bundle_or_skip();
  ttdeploy::Options options;
  options.num_threads = 1;
  tt_deploy_runtime* handle =
      ttdeploy::detail::wrap_runtime(ttdeploy::Runtime(bundle, options, tt_test::hooked_openvino(marking_hooks())));
  ttdeploy::Runtime layout(bundle, options);  // only to build the call's arrays
  const std::string skill = layout.skills().back();
  const auto call = tt_test::make_call(layout, skill, 4);
  std::vector<tt_deploy_input> inputs;
  const auto views = call.inputs();
  for (const auto& x : views) {
    inputs.push_back({x.name.data(), x.dtype == ttdeploy::DType::boolean ? TT_DEPLOY_BOOL : TT_DEPLOY_FLOAT32, x.data,
                      x.count});
  }
  std::vector<float> out(layout.action_dim());
  auto run = [&] {
    return tt_deploy_act_into(handle, inputs.data(), inputs.size(), call.task_obs.data(), call.task_obs.size(),
                              out.data(), out.size());
  };
  CHECK_EQ(tt_deploy_switch_skill(handle, skill.c_str()), TT_DEPLOY_OK);
  CHECK_EQ(run(), TT_DEPLOY_OK);  // warm-up
  tt_deploy_status status = TT_DEPLOY_OK;
  const Counts counts = count_allocations([&] {
    for (int i = 0; i < 100 && status == TT_DEPLOY_OK; ++i) {
      status = tt_deploy_switch_skill(handle, skill.c_str());
      if (status == TT_DEPLOY_OK) status = run();
    }
  });
  tt_deploy_destroy(handle);
  CHECK_EQ(status, TT_DEPLOY_OK);
  std::printf("C ABI: %ld allocations of its own in 100 calls\n", counts.ours);
  CHECK_EQ(counts.ours, 0L);
}
