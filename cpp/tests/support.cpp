#include "support.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <random>

#include "harness.hpp"
#include "manifest.hpp"

namespace tt_test {

std::vector<ttdeploy::Input> Call::inputs() const {
  std::vector<ttdeploy::Input> out;
  for (const Array& a : arrays) {
    if (a.dtype == ttdeploy::DType::float32) out.push_back(ttdeploy::Input::floats(a.name, a.floats.data(), a.floats.size()));
    else out.push_back(ttdeploy::Input::mask(a.name, reinterpret_cast<const bool*>(a.bytes.data()), a.bytes.size()));
  }
  return out;
}

std::vector<float>& Call::data(const std::string& name) {
  for (Array& a : arrays) {
    if (a.name == name && a.dtype == ttdeploy::DType::float32) return a.floats;
  }
  throw Failure("no float input " + name);
}

void Call::remove(const std::string& name) {
  arrays.erase(std::remove_if(arrays.begin(), arrays.end(), [&](const Array& a) { return a.name == name; }), arrays.end());
}

void Call::add_floats(const std::string& name, std::vector<float> values) {
  arrays.push_back({name, ttdeploy::DType::float32, std::move(values), {}});
}

void Call::add_mask(const std::string& name, std::vector<unsigned char> values) {
  arrays.push_back({name, ttdeploy::DType::boolean, {}, std::move(values)});
}

const ttdeploy::TokenGroup& group(const ttdeploy::Runtime& rt, const std::string& name) {
  for (const auto& g : rt.token_groups()) {
    if (g.name == name) return g;
  }
  throw Failure("the bundle has no token group " + name);
}

Call make_call(const ttdeploy::Runtime& rt, const std::string& skill, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Call call;
  for (const std::string& name : rt.visible_groups(skill)) {
    const ttdeploy::TokenGroup& g = group(rt, name);
    std::vector<float> values(g.n_tokens * g.feat_dim);
    for (auto& v : values) v = normal(rng);
    call.add_floats(g.name, std::move(values));
    if (!g.mask_name.empty()) {
      std::vector<unsigned char> mask(g.n_tokens);
      for (auto& m : mask) m = rng() % 2;
      mask[rng() % g.n_tokens] = 1;  // some token visible
      call.add_mask(g.mask_name, std::move(mask));
    }
  }
  call.task_obs.resize(rt.task_obs_dim(skill));
  for (auto& v : call.task_obs) v = normal(rng);
  return call;
}

std::vector<float> act(ttdeploy::Runtime& rt, const Call& call) {
  std::vector<float> out(rt.action_dim());
  rt.act_into(call.inputs(), call.task_obs.data(), call.task_obs.size(), out.data(), out.size());
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw Failure("cannot write " + path);
}

std::string content_dir(const std::string& bundle) {
  return ttdeploy::detail::content_dir(bundle, ttdeploy::detail::read_manifest(bundle));
}

namespace {

class HookedGraph final : public ttdeploy::BoundGraph {
 public:
  HookedGraph(std::unique_ptr<ttdeploy::BoundGraph> inner, std::shared_ptr<RunHooks> hooks)
      : inner_(std::move(inner)), hooks_(std::move(hooks)) {}
  void* input_data(std::size_t index) override { return inner_->input_data(index); }
  const float* output_data() override { return inner_->output_data(); }
  void run() override {
    hooks_->before_run();
    inner_->run();
    hooks_->after_run();
  }

 private:
  std::unique_ptr<ttdeploy::BoundGraph> inner_;
  std::shared_ptr<RunHooks> hooks_;
};

class HookedBackend final : public ttdeploy::Backend {
 public:
  explicit HookedBackend(std::shared_ptr<RunHooks> hooks)
      : inner_(ttdeploy::make_openvino_backend(1)), hooks_(std::move(hooks)) {}
  const char* name() const noexcept override { return inner_->name(); }
  std::unique_ptr<ttdeploy::BoundGraph> compile(const std::string& onnx, const std::string& path,
                                                const std::vector<ttdeploy::TensorSpec>& inputs,
                                                const std::vector<ttdeploy::TensorSpec>& outputs) override {
    return std::make_unique<HookedGraph>(inner_->compile(onnx, path, inputs, outputs), hooks_);
  }

 private:
  std::unique_ptr<ttdeploy::Backend> inner_;
  std::shared_ptr<RunHooks> hooks_;
};

}  // namespace

std::unique_ptr<ttdeploy::Backend> hooked_openvino(std::shared_ptr<RunHooks> hooks) {
  return std::make_unique<HookedBackend>(std::move(hooks));
}

}  // namespace tt_test
