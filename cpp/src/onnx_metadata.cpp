#include "onnx_metadata.hpp"

#include <cstdint>

#include "manifest.hpp"
#include "tt_deploy/runtime.hpp"

namespace ttdeploy::detail {
namespace {

// Just enough of the protobuf wire format (developers.google.com/protocol-buffers/docs/encoding) to walk
// one message's fields and open the length-delimited ones.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : rest_(bytes) {}
  bool done() const { return rest_.empty(); }

  bool varint(std::uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64 && !rest_.empty(); shift += 7) {
      auto byte = static_cast<std::uint8_t>(rest_.front());
      rest_.remove_prefix(1);
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // Next field: its number, wire type and (wire type 2) payload; other payloads are skipped.
  bool field(std::uint32_t& number, std::uint32_t& wire_type, std::string_view& payload) {
    std::uint64_t key = 0, length = 0;
    if (!varint(key)) return false;
    number = static_cast<std::uint32_t>(key >> 3);
    wire_type = static_cast<std::uint32_t>(key & 7);
    switch (wire_type) {
      case 0: return varint(length);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2:
        if (!varint(length) || length > rest_.size()) return false;
        payload = rest_.substr(0, length);
        rest_.remove_prefix(length);
        return true;
      default: return false;  // groups (3, 4) are not used by onnx.proto
    }
  }

 private:
  bool skip(std::size_t n) {
    if (n > rest_.size()) return false;
    rest_.remove_prefix(n);
    return true;
  }
  std::string_view rest_;
};

constexpr std::uint32_t kModelMetadataProps = 14;  // onnx.proto: ModelProto.metadata_props
constexpr std::uint32_t kEntryKey = 1, kEntryValue = 2;  // StringStringEntryProto

}  // namespace

std::optional<std::map<std::string, std::string>> onnx_metadata(std::string_view model) {
  std::map<std::string, std::string> out;
  WireReader reader(model);
  while (!reader.done()) {
    std::uint32_t number = 0, wire_type = 0;
    std::string_view payload;
    if (!reader.field(number, wire_type, payload)) return std::nullopt;
    if (number != kModelMetadataProps || wire_type != 2) continue;
    std::string key, value;
    WireReader entry(payload);
    while (!entry.done()) {
      std::uint32_t n = 0, w = 0;
      std::string_view text;
      if (!entry.field(n, w, text)) return std::nullopt;
      if (w == 2 && n == kEntryKey) key = std::string(text);
      if (w == 2 && n == kEntryValue) value = std::string(text);
    }
    out[key] = value;
  }
  return out;
}

void check_metadata(const std::map<std::string, std::string>& meta, const std::string& role,
                    const std::string& skill, const std::string& bfm_sha256, const std::string& path) {
  const std::pair<std::string, std::string> want[] = {
      {"tt-deploy.schema", kSchema}, {"tt-deploy.role", role}, {"tt-deploy.skill", skill},
      {"tt-deploy.bfm_sha256", bfm_sha256}};
  std::string wrong;
  for (const auto& [key, value] : want) {
    auto it = meta.find(key);
    if (it == meta.end() || it->second != value) {
      wrong += (wrong.empty() ? "'" : ", '") + key + "': " + (it == meta.end() ? "None" : "'" + it->second + "'");
    }
  }
  if (!wrong.empty()) {
    throw Error(ErrorCode::bundle, path + ": metadata {" + wrong + "} does not match the manifest; re-export the bundle");
  }
}

}  // namespace ttdeploy::detail
