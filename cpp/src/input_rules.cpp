#include "input_rules.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ttdeploy::detail {
namespace {

// The group a skill with skill.json `task_prior` must be shown every call (skill_runtime._PRIOR_PROMPT).
constexpr std::string_view kPriorPromptGroup = "masked_mimic_target_poses";

static_assert(sizeof(bool) == 1, "bool masks are passed as 1-byte elements, like numpy's bool");

bool all_finite(const float* x, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return false;
  }
  return true;
}

bool any_true(const bool* x, std::size_t n) noexcept {
  // read as bytes: a C caller's mask byte 2 counts as True, as every nonzero byte does below
  const auto* bytes = reinterpret_cast<const unsigned char*>(x);
  return std::any_of(bytes, bytes + n, [](unsigned char b) { return b != 0; });
}

std::string shape_text(const std::vector<std::size_t>& dims) {
  std::string s = "(";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + (dims.size() == 1 ? ",)" : ")");
}

// Per-sample shape of a group's data or mask (SkillRuntime._expected_io).
std::vector<std::size_t> sample_shape(const TokenGroup& g, bool mask) {
  if (mask) return {g.n_tokens};
  if (g.n_tokens == 1) return {g.feat_dim};
  return {g.n_tokens, g.feat_dim};
}

std::size_t elements(const std::vector<std::size_t>& dims) {
  std::size_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

std::vector<std::int64_t> batched(const std::vector<std::size_t>& sample) {
  std::vector<std::int64_t> dims{1};
  for (auto d : sample) dims.push_back(static_cast<std::int64_t>(d));
  return dims;
}

std::string dims_text(const std::vector<std::int64_t>& dims) {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + (dims[i] < 0 ? "?" : std::to_string(dims[i]));
  return s + "]";
}

[[noreturn]] void refuse(const std::string& message) { throw Error(ErrorCode::input, message); }

}  // namespace

TokenLayout::TokenLayout(const BundleManifest& manifest) : groups_(manifest.token_groups) {}

std::optional<TokenLayout::Slot> TokenLayout::find(std::string_view name) const noexcept {
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].name == name) return Slot{g, false};
    if (!groups_[g].mask_name.empty() && groups_[g].mask_name == name) return Slot{g, true};
  }
  return std::nullopt;
}

SkillInputs::SkillInputs(const TokenLayout& layout, const BundleManifest& manifest, const SkillManifest& skill,
                         const std::vector<TensorSpec>& graph_inputs, bool require_prior)
    : layout_(layout),
      skill_(skill.name),
      task_obs_name_(manifest.task_obs_name),
      task_obs_dim_(skill.task_obs_dim),
      takes_(layout.size(), false),
      require_prior_(require_prior && skill.has_task_prior),
      visible_groups_(skill.visible_groups) {
  for (std::size_t i = 0; i < graph_inputs.size(); ++i) {
    const TensorSpec& t = graph_inputs[i];
    Binding b{Kind::task_obs, 0, task_obs_dim_, i};
    std::vector<std::size_t> sample{task_obs_dim_};
    if (t.name != task_obs_name_) {
      auto slot = layout.find(t.name);
      if (!slot) {
        throw Error(ErrorCode::bundle, "skill '" + skill_ + "': graph input '" + t.name +
                                           "' is no token group, mask or task_obs of the manifest; re-export the bundle");
      }
      const TokenGroup& g = layout.groups()[slot->group];
      sample = sample_shape(g, slot->is_mask);
      b = {slot->is_mask ? Kind::group_mask : Kind::group_data, slot->group, elements(sample), i};
      if (!slot->is_mask) takes_[slot->group] = true;
    }
    const std::string dtype = b.kind == Kind::group_mask ? "bool" : "float32";
    if (t.shape != batched(sample) || t.dtype != dtype) {
      throw Error(ErrorCode::bundle, "skill '" + skill_ + "': graph input '" + t.name + "' is " + t.dtype + " " +
                                         dims_text(t.shape) + ", the manifest's layout says " + dtype + " " +
                                         dims_text(batched(sample)) + "; re-export the bundle");
    }
    bindings_.push_back(b);
  }
  if (std::none_of(bindings_.begin(), bindings_.end(), [](const Binding& b) { return b.kind == Kind::task_obs; })) {
    throw Error(ErrorCode::bundle, "skill '" + skill_ + "': its fused graph takes no '" + task_obs_name_ +
                                       "'; re-export the bundle");
  }
  if (auto slot = layout.find(kPriorPromptGroup); slot && !slot->is_mask) prior_ = slot->group;
}

void SkillInputs::check_arrays(const Input* inputs, std::size_t n_inputs, const float* task_obs,
                               std::size_t task_obs_count, CallScratch& scratch) const {
  std::fill(scratch.data.begin(), scratch.data.end(), nullptr);
  std::fill(scratch.mask.begin(), scratch.mask.end(), nullptr);
  if (n_inputs > 0 && inputs == nullptr) refuse("inputs is a null pointer with " + std::to_string(n_inputs) + " entries");
  for (std::size_t i = 0; i < n_inputs; ++i) {
    const Input& x = inputs[i];
    auto slot = layout_.find(x.name);
    if (!slot) {
      std::string known;
      for (const TokenGroup& g : layout_.groups()) known += (known.empty() ? "" : ", ") + g.name;
      for (const TokenGroup& g : layout_.groups()) {
        if (!g.mask_name.empty()) known += ", " + g.mask_name;
      }
      refuse("unknown input '" + std::string(x.name) + "'; inputs are " + known + " and " + task_obs_name_ +
             " (separate argument)");
    }
    const TokenGroup& g = layout_.groups()[slot->group];
    auto input = [&x] { return "input '" + std::string(x.name) + "'"; };  // messages only: no string per call
    if ((slot->is_mask ? scratch.mask[slot->group] != nullptr : scratch.data[slot->group] != nullptr)) {
      refuse(input() + " is given twice");
    }
    const DType want = slot->is_mask ? DType::boolean : DType::float32;
    if (x.dtype != want) {
      refuse(input() + " must have dtype " + (slot->is_mask ? "bool" : "float32") + ", got " +
             (x.dtype == DType::boolean ? "bool" : x.dtype == DType::float32 ? "float32" : "an unknown dtype"));
    }
    if (x.count != (slot->is_mask ? g.n_tokens : g.n_tokens * g.feat_dim)) {  // no vector: this path must not allocate
      const auto sample = sample_shape(g, slot->is_mask);
      std::vector<std::size_t> one{1};
      one.insert(one.end(), sample.begin(), sample.end());
      refuse(input() + " must have shape " + shape_text(sample) + " or " + shape_text(one) + " (" +
             std::to_string(elements(sample)) + " elements), got " + std::to_string(x.count) + " elements");
    }
    if (x.data == nullptr) refuse(input() + " has no data (null pointer)");
    if (slot->is_mask) {
      scratch.mask[slot->group] = static_cast<const bool*>(x.data);
    } else {
      const auto* values = static_cast<const float*>(x.data);
      if (!all_finite(values, x.count)) refuse(input() + " contains NaN or inf");
      scratch.data[slot->group] = values;
    }
  }
  if (task_obs_count != task_obs_dim_) {
    refuse("input '" + task_obs_name_ + "' must have shape (" + std::to_string(task_obs_dim_) + ",) or (1, " +
           std::to_string(task_obs_dim_) + "), got " + std::to_string(task_obs_count) + " elements");
  }
  if (task_obs == nullptr) refuse("input '" + task_obs_name_ + "' has no data (null pointer)");
  if (!all_finite(task_obs, task_obs_count)) refuse("input '" + task_obs_name_ + "' contains NaN or inf");
}

void SkillInputs::check_visibility(const CallScratch& scratch) const {
  for (std::size_t gi = 0; gi < layout_.size(); ++gi) {  // SkillRuntime._reject_dropped_visible
    const TokenGroup& g = layout_.groups()[gi];
    const bool data = scratch.data[gi] != nullptr, mask = scratch.mask[gi] != nullptr;
    const bool visible = (data && !mask) || (mask && any_true(scratch.mask[gi], g.n_tokens));
    if (mask && !data && visible) refuse("'" + g.mask_name + "' marks tokens visible but '" + g.name + "' was not given");
    if (visible && !takes_[gi]) {
      std::string keeps;
      for (const auto& v : visible_groups_) keeps += (keeps.empty() ? "'" : ", '") + v + "'";
      refuse("input '" + g.name + "' has visible tokens but skill '" + skill_ +
             "''s fused graph drops that group (it keeps [" + keeps +
             "]); hide it (mask all False), leave it out, or use mode='split'");
    }
  }
  if (require_prior_) {  // SkillRuntime._require_prior, batch 1
    const bool shown = prior_ && scratch.data[*prior_] != nullptr &&
                       (scratch.mask[*prior_] == nullptr ||
                        any_true(scratch.mask[*prior_], layout_.groups()[*prior_].n_tokens));
    if (!shown) {
      refuse("skill '" + skill_ + "' was trained with its prior prompt visible, but this call hides '" +
             std::string(kPriorPromptGroup) +
             "': build it every step from skill.json's task_prior (docs/embedding.md), or open the runtime with "
             "allow_hidden_prior");
    }
  }
  for (const Binding& b : bindings_) {  // SkillRuntime._default: a group without a mask is required
    if (b.kind == Kind::group_data && layout_.groups()[b.group].mask_name.empty() && scratch.data[b.group] == nullptr) {
      refuse("input '" + layout_.groups()[b.group].name + "' is required");
    }
  }
}

void SkillInputs::write(const float* task_obs, BoundGraph& graph, const CallScratch& scratch) const {
  for (const Binding& b : bindings_) {
    void* dst = graph.input_data(b.input);
    switch (b.kind) {
      case Kind::task_obs:
        std::memcpy(dst, task_obs, b.count * sizeof(float));
        break;
      case Kind::group_data:
        if (scratch.data[b.group] != nullptr) std::memcpy(dst, scratch.data[b.group], b.count * sizeof(float));
        else std::memset(dst, 0, b.count * sizeof(float));  // hidden group: zeros (its mask is False)
        break;
      case Kind::group_mask: {
        auto* out = static_cast<unsigned char*>(dst);
        if (const bool* m = scratch.mask[b.group]) {
          const auto* in = reinterpret_cast<const unsigned char*>(m);
          for (std::size_t i = 0; i < b.count; ++i) out[i] = in[i] != 0;  // exactly 0 / 1 for the graph
        } else {
          std::memset(out, scratch.data[b.group] != nullptr ? 1 : 0, b.count);  // given without mask: visible
        }
        break;
      }
    }
  }
}

void SkillInputs::fill(const Input* inputs, std::size_t n_inputs, const float* task_obs, std::size_t task_obs_count,
                       BoundGraph& graph, CallScratch& scratch) const {
  check_arrays(inputs, n_inputs, task_obs, task_obs_count, scratch);
  check_visibility(scratch);
  write(task_obs, graph, scratch);
}

}  // namespace ttdeploy::detail
