// The file-format layer: SHA-256, manifest field/type rules, ONNX metadata.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

#include "bundle_files.hpp"
#include "harness.hpp"
#include "json_schema.hpp"
#include "manifest.hpp"
#include "onnx_metadata.hpp"
#include "sha256.hpp"
#include "support.hpp"

using ttdeploy::ErrorCode;
using nlohmann::json;
namespace d = ttdeploy::detail;

TT_TEST(sha256, matches_the_fips_180_examples) {
  CHECK_EQ(d::sha256_hex("abc"), std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK_EQ(d::sha256_hex(""), std::string("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TT_TEST(sha256, every_bundle_graph_matches_its_manifest_hash) {
  const std::string bundle = tt_test::bundle_or_skip();
  const d::BundleManifest m = d::read_manifest(bundle);
  const std::string content = d::content_dir(bundle, m);
  for (const d::GraphSpec& g : m.graphs) d::read_verified(d::join_path(content, g.path), g.sha256);  // throws if not
  tt_test::BundleCopy copy(bundle);
  const std::string graph = d::join_path(tt_test::content_dir(copy.path), m.graphs.front().path);
  std::string bytes = tt_test::read_text(graph);
  bytes[bytes.size() / 2] ^= 1;  // one flipped bit
  tt_test::write_text(graph, bytes);
  CHECK_ERROR(ErrorCode::hash_mismatch, d::read_verified(graph, m.graphs.front().sha256));
  CHECK_ERROR(ErrorCode::missing_file, d::read_verified(graph + ".gone", m.graphs.front().sha256));
}

TT_TEST(schema, every_annotation_of_the_table_parses) {
  d::check_schema_table();
  CHECK(d::schema_classes().size() >= 13);  // the classes reachable from BundleManifest and SkillManifest
}

TT_TEST(schema, tensor_spec_types_follow_python_rules) {
  auto spec = [](json shape) { return json{{"name", "x"}, {"shape", shape}, {"dtype", "float32"}}; };
  d::validate_fields(spec({1, "batch"}), "TensorSpec", "t");
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(spec({true}), "TensorSpec", "t"));  // a bool is not an int
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(spec({1.5}), "TensorSpec", "t"));
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(spec("1, 2"), "TensorSpec", "t"));  // not a list
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(json::array(), "TensorSpec", "t"));   // not an object
}

TT_TEST(schema, missing_and_unknown_fields_are_named) {
  json enc = {{"obs_dim", 3}, {"token_dim", 64}, {"hidden", {256, 256}}, {"norm_clamp", 5}, {"param_count", 1}};
  d::validate_fields(enc, "EncoderSpec", "e");  // an int where a float is annotated is a float
  enc["obs_dim"] = 3.0;
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(enc, "EncoderSpec", "e"));  // a float is not an int
  enc["obs_dim"] = 3;
  enc["norm_clamp"] = nullptr;  // float | None
  d::validate_fields(enc, "EncoderSpec", "e");
  enc["token_dim"] = nullptr;  // int: null refused
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(enc, "EncoderSpec", "e"));
  enc["token_dim"] = 64;
  enc.erase("hidden");
  enc["extra"] = 1;
  const std::string msg = CHECK_ERROR(ErrorCode::bundle, d::validate_fields(enc, "EncoderSpec", "e"));
  CHECK_EQ(msg, std::string("e: missing fields ['hidden'], unknown fields ['extra']; re-export the bundle"));
}

TT_TEST(schema, nested_dataclasses_are_checked_where_they_sit) {
  const std::string bundle = tt_test::bundle_or_skip();
  json m = json::parse(tt_test::read_text(bundle + "/manifest.json"));
  d::validate_fields(m, "BundleManifest", "m");
  m["token_groups"][0].erase("n_tokens");
  const std::string msg = CHECK_ERROR(ErrorCode::bundle, d::validate_fields(m, "BundleManifest", "m"));
  CHECK(msg.rfind("m.token_groups[0]: missing fields ['n_tokens']", 0) == 0);
}

TT_TEST(schema, unions_without_a_dataclass_check_only_primitives_as_python_does) {
  // manifest._convert: in `tuple[float, ...] | None` only null and the non-primitive branch exist, and
  // Python accepts any non-null value there; this reader must not refuse what Python reads.
  const std::string bundle = tt_test::bundle_or_skip();
  json m = json::parse(tt_test::read_text(bundle + "/manifest.json"));
  m["pd_offset"] = "not a list";
  d::validate_fields(m, "BundleManifest", "m");
  m["default_skill"] = 3;  // str | None: a primitive union is checked
  CHECK_ERROR(ErrorCode::bundle, d::validate_fields(m, "BundleManifest", "m"));
}

namespace {
std::string varint(std::uint64_t v) {
  std::string s;
  do {
    s += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return s;
}
std::string field(std::uint32_t number, const std::string& payload) {  // wire type 2
  return varint(number << 3 | 2) + varint(payload.size()) + payload;
}
std::string entry(const std::string& key, const std::string& value) { return field(14, field(1, key) + field(2, value)); }
}  // namespace

TT_TEST(onnx_metadata, reads_metadata_props_among_other_fields) {
  const std::string model = varint(1 << 3) + varint(8) + field(7, std::string(300, 'g')) + entry("a", "1") +
                            varint(5 << 3 | 1) + std::string(8, 'x') + entry("b", "2") + entry("a", "3");
  const auto meta = d::onnx_metadata(model);
  CHECK(meta.has_value());
  CHECK_EQ(meta->size(), 2u);
  CHECK_EQ(meta->at("a"), std::string("3"));  // a repeated key: the last wins, like Python's dict
  CHECK_EQ(meta->at("b"), std::string("2"));
  CHECK(!d::onnx_metadata(model.substr(0, 20)).has_value());  // cut inside the graph field
}

TT_TEST(onnx_metadata, bundle_graphs_name_their_role_skill_and_bfm) {
  const std::string bundle = tt_test::bundle_or_skip();
  const d::BundleManifest m = d::read_manifest(bundle);
  for (const d::GraphSpec& g : m.graphs) {
    const auto meta = d::onnx_metadata(tt_test::read_text(d::join_path(d::content_dir(bundle, m), g.path)));
    CHECK(meta.has_value());
    d::check_metadata(*meta, g.role, g.skill.value_or(""), m.bfm_sha256, g.path);
    CHECK_ERROR(ErrorCode::bundle, d::check_metadata(*meta, g.role == "fused" ? "encoder" : "fused",
                                                     g.skill.value_or(""), m.bfm_sha256, g.path));
  }
}
