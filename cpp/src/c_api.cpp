// The C ABI (tt_deploy.h) over ttdeploy::Runtime: every exception becomes a status code + message.
#include "tt_deploy/tt_deploy.h"

#include <array>
#include <new>
#include <string>
#include <vector>

#include "c_api_internal.hpp"
#include "tt_deploy/runtime.hpp"

// The two enums are one list: a code added to one and not the other fails the build.
static_assert(TT_DEPLOY_ERR_BUNDLE == static_cast<int>(ttdeploy::ErrorCode::bundle) &&
                  TT_DEPLOY_ERR_MISSING_FILE == static_cast<int>(ttdeploy::ErrorCode::missing_file) &&
                  TT_DEPLOY_ERR_HASH_MISMATCH == static_cast<int>(ttdeploy::ErrorCode::hash_mismatch) &&
                  TT_DEPLOY_ERR_SCHEMA == static_cast<int>(ttdeploy::ErrorCode::schema) &&
                  TT_DEPLOY_ERR_UNKNOWN_NAME == static_cast<int>(ttdeploy::ErrorCode::unknown_name) &&
                  TT_DEPLOY_ERR_INPUT == static_cast<int>(ttdeploy::ErrorCode::input) &&
                  TT_DEPLOY_ERR_NONFINITE_ACTIONS == static_cast<int>(ttdeploy::ErrorCode::nonfinite_actions) &&
                  TT_DEPLOY_ERR_CONCURRENT_USE == static_cast<int>(ttdeploy::ErrorCode::concurrent_use) &&
                  TT_DEPLOY_ERR_CLOSED == static_cast<int>(ttdeploy::ErrorCode::closed) &&
                  TT_DEPLOY_ERR_BACKEND == static_cast<int>(ttdeploy::ErrorCode::backend),
              "tt_deploy_status and ttdeploy::ErrorCode disagree");

struct tt_deploy_runtime {
  ttdeploy::Runtime runtime;
};

namespace {

thread_local std::string last_error;

tt_deploy_status fail(tt_deploy_status status, const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    last_error.clear();  // out of memory for the message: the code still says what happened
  }
  return status;
}

// Runs `body`, turning every exception into its status; no exception crosses the C boundary.
template <typename Body>
tt_deploy_status guarded(Body&& body) noexcept {
  try {
    body();
    return TT_DEPLOY_OK;
  } catch (const ttdeploy::Error& e) {
    return fail(static_cast<tt_deploy_status>(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(TT_DEPLOY_ERR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(TT_DEPLOY_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(TT_DEPLOY_ERR_INTERNAL, "unknown exception");
  }
}

[[noreturn]] void refuse(const char* what) { throw ttdeploy::Error(ttdeploy::ErrorCode::input, what); }

ttdeploy::Input to_input(const tt_deploy_input& x) {
  if (x.name == nullptr) refuse("an input's name is a null pointer");
  const auto dtype = x.dtype == TT_DEPLOY_FLOAT32 ? ttdeploy::DType::float32
                     : x.dtype == TT_DEPLOY_BOOL  ? ttdeploy::DType::boolean
                                                  : static_cast<ttdeploy::DType>(0xff);  // refused as unknown
  return {x.name, dtype, x.data, x.count};
}

constexpr std::size_t kStackInputs = 64;  // far above 2 x token groups: a real call never uses the heap

}  // namespace

tt_deploy_runtime* ttdeploy::detail::wrap_runtime(Runtime runtime) { return new tt_deploy_runtime{std::move(runtime)}; }

extern "C" {

tt_deploy_status tt_deploy_create(const char* bundle_dir, const tt_deploy_options* options, tt_deploy_runtime** out) {
  return guarded([&] {
    if (out == nullptr) refuse("out is a null pointer");
    *out = nullptr;
    if (bundle_dir == nullptr) refuse("bundle_dir is a null pointer");
    ttdeploy::Options opts;
    if (options != nullptr) {
      if (options->n_skills > 0 && options->skills == nullptr) refuse("options.skills is a null pointer");
      for (std::size_t i = 0; i < options->n_skills; ++i) {
        if (options->skills[i] == nullptr) refuse("options.skills holds a null pointer");
        opts.skills.emplace_back(options->skills[i]);
      }
      opts.num_threads = options->num_threads;
      opts.nonfinite = options->nonfinite_zeros ? ttdeploy::NonFinitePolicy::zeros : ttdeploy::NonFinitePolicy::raise;
      opts.allow_hidden_prior = options->allow_hidden_prior != 0;
    }
    *out = new tt_deploy_runtime{ttdeploy::Runtime(bundle_dir, opts)};
  });
}

void tt_deploy_destroy(tt_deploy_runtime* runtime) { delete runtime; }

tt_deploy_status tt_deploy_close(tt_deploy_runtime* runtime) {
  return guarded([&] {
    if (runtime == nullptr) refuse("runtime is a null pointer");
    runtime->runtime.close();
  });
}

tt_deploy_status tt_deploy_switch_skill(tt_deploy_runtime* runtime, const char* skill) {
  return guarded([&] {
    if (runtime == nullptr || skill == nullptr) refuse("runtime or skill is a null pointer");
    runtime->runtime.switch_skill(skill);
  });
}

tt_deploy_status tt_deploy_act_into(tt_deploy_runtime* runtime, const tt_deploy_input* inputs, size_t n_inputs,
                                    const float* task_obs, size_t task_obs_count, float* out, size_t out_count) {
  return guarded([&] {
    if (runtime == nullptr) refuse("runtime is a null pointer");
    if (n_inputs > 0 && inputs == nullptr) refuse("inputs is a null pointer");
    std::array<ttdeploy::Input, kStackInputs> local;
    std::vector<ttdeploy::Input> many;  // only for calls with more inputs than names exist (refused below)
    ttdeploy::Input* converted = local.data();
    if (n_inputs > kStackInputs) {
      many.resize(n_inputs);
      converted = many.data();
    }
    for (std::size_t i = 0; i < n_inputs; ++i) converted[i] = to_input(inputs[i]);
    runtime->runtime.act_into(converted, n_inputs, task_obs, task_obs_count, out, out_count);
  });
}

tt_deploy_status tt_deploy_action_dim(const tt_deploy_runtime* runtime, size_t* out) {
  return guarded([&] {
    if (runtime == nullptr || out == nullptr) refuse("runtime or out is a null pointer");
    *out = runtime->runtime.action_dim();
  });
}

tt_deploy_status tt_deploy_task_obs_dim(const tt_deploy_runtime* runtime, const char* skill, size_t* out) {
  return guarded([&] {
    if (runtime == nullptr || skill == nullptr || out == nullptr) refuse("runtime, skill or out is a null pointer");
    *out = runtime->runtime.task_obs_dim(skill);
  });
}

tt_deploy_status tt_deploy_nonfinite_count(const tt_deploy_runtime* runtime, uint64_t* out) {
  return guarded([&] {
    if (runtime == nullptr || out == nullptr) refuse("runtime or out is a null pointer");
    *out = runtime->runtime.nonfinite_count();
  });
}

const char* tt_deploy_active_skill(const tt_deploy_runtime* runtime) {
  return runtime == nullptr ? nullptr : runtime->runtime.active().c_str();
}

const char* tt_deploy_last_error(void) { return last_error.c_str(); }

const char* tt_deploy_status_name(tt_deploy_status status) {
  switch (status) {
    case TT_DEPLOY_OK: return "TT_DEPLOY_OK";
    case TT_DEPLOY_ERR_BUNDLE: return "TT_DEPLOY_ERR_BUNDLE";
    case TT_DEPLOY_ERR_MISSING_FILE: return "TT_DEPLOY_ERR_MISSING_FILE";
    case TT_DEPLOY_ERR_HASH_MISMATCH: return "TT_DEPLOY_ERR_HASH_MISMATCH";
    case TT_DEPLOY_ERR_SCHEMA: return "TT_DEPLOY_ERR_SCHEMA";
    case TT_DEPLOY_ERR_UNKNOWN_NAME: return "TT_DEPLOY_ERR_UNKNOWN_NAME";
    case TT_DEPLOY_ERR_INPUT: return "TT_DEPLOY_ERR_INPUT";
    case TT_DEPLOY_ERR_NONFINITE_ACTIONS: return "TT_DEPLOY_ERR_NONFINITE_ACTIONS";
    case TT_DEPLOY_ERR_CONCURRENT_USE: return "TT_DEPLOY_ERR_CONCURRENT_USE";
    case TT_DEPLOY_ERR_CLOSED: return "TT_DEPLOY_ERR_CLOSED";
    case TT_DEPLOY_ERR_BACKEND: return "TT_DEPLOY_ERR_BACKEND";
    case TT_DEPLOY_ERR_INTERNAL: return "TT_DEPLOY_ERR_INTERNAL";
  }
  return "TT_DEPLOY_ERR_UNKNOWN";
}

}  // extern "C"
