// The tt-deploy metadata every bundle graph carries (ONNX ModelProto.metadata_props), read straight
// from the protobuf bytes: OpenVINO's ONNX reader does not expose it, and the runtime must check it
// (session.check_metadata) without linking protobuf.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace ttdeploy::detail {

// metadata_props as key -> value (a repeated key: the last wins, as in Python's dict), or nullopt when
// the bytes are not a well-formed protobuf message.
std::optional<std::map<std::string, std::string>> onnx_metadata(std::string_view model);

// session.check_metadata: Error(bundle) unless the graph names this schema, role, skill and BFM.
void check_metadata(const std::map<std::string, std::string>& meta, const std::string& role,
                    const std::string& skill, const std::string& bfm_sha256, const std::string& path);

}  // namespace ttdeploy::detail
