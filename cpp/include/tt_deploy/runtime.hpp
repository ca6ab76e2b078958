// ttdeploy::Runtime: runs a tt-deploy bundle's skills in a C++ robot controller.
//
// The C++ twin of tt_deploy.runtime.SkillRuntime (fused mode, batch 1, fp32): every file is read, hashed
// and checked in the constructor, exactly as the Python runtime checks it; `switch_skill` changes one
// index; `act_into` validates the caller's arrays, copies them into buffers bound to the compiled graph
// once, runs it and copies the actions out. Errors are `ttdeploy::Error` (a code + what()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ttdeploy {

// One code per Python exception of tt_deploy.errors (BundleError split by cause); the C ABI's codes
// (tt_deploy.h) have the same values.
enum class ErrorCode : int {
  ok = 0,
  bundle = 1,             // BundleError: a bundle file is malformed or disagrees with another
  missing_file = 2,       // BundleError: a file the manifest names is not there
  hash_mismatch = 3,      // BundleError: a file's bytes do not hash to the sha256 recorded for it
  schema = 4,             // BundleError: manifest.json / skill.json is not "tt-deploy.bundle/1"
  unknown_name = 5,       // UnknownNameError: a skill the bundle (or the resident set) lacks
  input = 6,              // InputError: an argument or array has the wrong name, dtype, size or value
  nonfinite_actions = 7,  // NonFiniteActionsError: the graph returned NaN/inf actions
  concurrent_use = 8,     // ConcurrentUseError: a call overlapped another call on this runtime
  closed = 9,             // TTDeployError: the runtime was closed
  backend = 10,           // the inference library failed while running a graph that had loaded
};

// "hash_mismatch", ... (the enum's names).
const char* error_code_name(ErrorCode code) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

enum class DType : std::uint8_t { float32 = 0, boolean = 1 };

// One token-group array (float32) or mask (bool, true = visible) of one sample, row-major, by its
// manifest name. `count` is the element count: n_tokens * feat_dim (feat_dim for single-token groups),
// n_tokens for a mask.
struct Input {
  std::string_view name;
  DType dtype;
  const void* data;
  std::size_t count;

  static Input floats(std::string_view name, const float* data, std::size_t count) noexcept {
    return {name, DType::float32, data, count};
  }
  static Input mask(std::string_view name, const bool* data, std::size_t count) noexcept {
    return {name, DType::boolean, data, count};
  }
};

// What a call does when the graph returns NaN/inf actions (SkillRuntime's `nonfinite`).
enum class NonFinitePolicy { raise, zeros };

struct Options {
  std::vector<std::string> skills;  // resident skills; empty = every skill of the bundle
  int num_threads = 0;              // inference threads; 0 = physical cores (SessionConfig's default)
  NonFinitePolicy nonfinite = NonFinitePolicy::raise;
  bool allow_hidden_prior = false;  // run a prior-prompt skill without its prompt (off its training data)
};

// One BFM token group as manifest.json's `token_groups` describes it.
struct TokenGroup {
  std::string name;
  std::size_t n_tokens = 0;
  std::size_t feat_dim = 0;
  std::string mask_name;  // "" for a group without a mask (always visible, required)
};

class Backend;  // backend.hpp: how graphs are compiled and run (OpenVINO now)

class Runtime {
 public:
  // Loads and checks the bundle and compiles every resident skill's static fp32 fused graph.
  explicit Runtime(const std::string& bundle_dir, const Options& options = {});
  // The same on another backend (a future ONNX Runtime / TensorRT one, or a test's instrumented one).
  Runtime(const std::string& bundle_dir, const Options& options, std::unique_ptr<Backend> backend);
  ~Runtime();
  Runtime(Runtime&&) noexcept;
  Runtime& operator=(Runtime&&) noexcept;
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Make a resident skill active (no graph work: every skill was compiled in the constructor).
  void switch_skill(std::string_view skill);

  // Actions of the active skill for one sample, written into `out` (action_dim floats). Input rules are
  // SkillRuntime's: obs and terrain are required; a maskable group left out is hidden; a group given
  // without its mask is visible; visible tokens of a group the skill's graph dropped are refused.
  // Not thread-safe: a call that overlaps another call throws Error(concurrent_use).
  void act_into(const Input* inputs, std::size_t n_inputs, const float* task_obs, std::size_t task_obs_count,
                float* out, std::size_t out_count);
  void act_into(const std::vector<Input>& inputs, const float* task_obs, std::size_t task_obs_count, float* out,
                std::size_t out_count) {
    act_into(inputs.data(), inputs.size(), task_obs, task_obs_count, out, out_count);
  }

  // Releases every compiled graph; later switch_skill / act_into throw Error(closed).
  void close();

  const std::string& active() const;
  const std::vector<std::string>& skills() const;  // resident skills, in load order
  std::size_t task_obs_dim(std::string_view skill) const;
  // The token groups a skill's graph takes (skill.json visible_groups); the others must stay hidden.
  const std::vector<std::string>& visible_groups(std::string_view skill) const;
  // Whether a skill must be shown its prior prompt every call (skill.json task_prior).
  bool has_task_prior(std::string_view skill) const;
  std::size_t action_dim() const;
  double action_clamp() const;  // actions already lie in [-clamp, clamp] (every graph clamps)
  double control_dt() const;
  const std::string& task_obs_name() const;
  const std::vector<TokenGroup>& token_groups() const;
  std::uint64_t nonfinite_count() const;  // calls that returned NaN/inf actions
  const char* backend_name() const;

 private:
  struct Impl;
  Impl& impl() const;  // Error(closed) on a moved-from Runtime instead of a null dereference
  std::unique_ptr<Impl> impl_;
};

}  // namespace ttdeploy
