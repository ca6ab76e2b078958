// Field and type checks of manifest.json / skill.json objects: manifest.from_dict's rules, driven by
// the dataclass annotations in manifest_fields.def.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace ttdeploy::detail {

// Throws Error(bundle) wherever manifest.from_dict(<cls>, data, where) raises BundleError: a field
// missing or unknown, or a JSON value of the wrong type, recursively through nested dataclasses.
void validate_fields(const nlohmann::json& data, std::string_view cls, const std::string& where);

// The dataclass names manifest_fields.def describes (for the schema's own consistency test).
std::vector<std::string> schema_classes();
// Parses every annotation of the table; throws std::logic_error naming one it cannot read.
void check_schema_table();

}  // namespace ttdeploy::detail
