#include "json_schema.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <stdexcept>

#include "tt_deploy/runtime.hpp"

namespace ttdeploy::detail {
namespace {

struct Field {
  std::string_view cls, name, annotation;
  bool required;
};

constexpr Field kFields[] = {
#define TT_FIELD(cls, field, annotation, req) {#cls, #field, annotation, std::string_view(#req) == "required"},
#include "manifest_fields.def"
#undef TT_FIELD
};

bool is_class(std::string_view cls) {
  return std::any_of(std::begin(kFields), std::end(kFields), [&](const Field& f) { return f.cls == cls; });
}

// A parsed annotation: "str", "int | str", "tuple[X, ...]", "dict[str, str] | None", "BFMInfo", ...
struct Type {
  enum Kind { none, str, integer, floating, boolean, dict, tuple, dataclass, one_of } kind = none;
  std::vector<Type> args;  // tuple: the element type; one_of: the alternatives
  std::string text;        // the annotation, for messages; the class name for a dataclass
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

Type parse(std::string_view text) {
  text = trim(text);
  std::vector<std::string_view> parts;  // split on '|' outside brackets
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    depth += text[i] == '[' ? 1 : text[i] == ']' ? -1 : 0;
    if (text[i] == '|' && depth == 0) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  Type t;
  t.text = std::string(text);
  if (parts.size() > 1) {
    t.kind = Type::one_of;
    for (auto p : parts) t.args.push_back(parse(p));
    return t;
  }
  constexpr std::string_view tuple_open = "tuple[", tuple_close = ", ...]";
  if (text == "None") t.kind = Type::none;
  else if (text == "str") t.kind = Type::str;
  else if (text == "int") t.kind = Type::integer;
  else if (text == "float") t.kind = Type::floating;
  else if (text == "bool") t.kind = Type::boolean;
  else if (text == "dict" || text.substr(0, 5) == "dict[") t.kind = Type::dict;
  else if (text.size() > tuple_open.size() + tuple_close.size() && text.substr(0, tuple_open.size()) == tuple_open &&
           text.substr(text.size() - tuple_close.size()) == tuple_close) {
    t.kind = Type::tuple;
    t.args.push_back(parse(text.substr(tuple_open.size(), text.size() - tuple_open.size() - tuple_close.size())));
  } else if (is_class(text)) {
    t.kind = Type::dataclass;
  } else {
    throw std::logic_error("manifest_fields.def: cannot read the annotation '" + std::string(text) + "'");
  }
  return t;
}

// Python's name for a JSON value's type (json.loads gives dict, list, str, int, float, bool, None).
std::string python_type(const nlohmann::json& v) {
  if (v.is_object()) return "dict";
  if (v.is_array()) return "list";
  if (v.is_string()) return "str";
  if (v.is_boolean()) return "bool";
  if (v.is_number_integer()) return "int";
  if (v.is_number()) return "float";
  return "NoneType";
}

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorCode::bundle, message); }

// manifest._is: whether a value has a primitive type; any other type is checked by recursion (or, inside
// a union, not at all: Python's `tuple[float, ...] | None` accepts any non-null value, and so does this).
bool has_primitive_type(const Type& t, const nlohmann::json& v) {
  switch (t.kind) {
    case Type::str: return v.is_string();
    case Type::integer: return v.is_number_integer();  // a JSON bool is not a number here, as in Python
    case Type::floating: return v.is_number();
    case Type::boolean: return v.is_boolean();
    case Type::dict: return v.is_object();
    default: return true;
  }
}

void check_value(const Type& t, const nlohmann::json& v, const std::string& where) {  // manifest._convert
  if (v.is_null()) {
    bool optional = t.kind == Type::one_of &&
                    std::any_of(t.args.begin(), t.args.end(), [](const Type& a) { return a.kind == Type::none; });
    if (!optional) fail(where + ": null where a " + t.text + " is required; re-export the bundle");
    return;
  }
  if (t.kind == Type::one_of) {
    for (const Type& a : t.args) {
      if (a.kind == Type::dataclass) return validate_fields(v, a.text, where);  // the first dataclass decides
    }
    for (const Type& a : t.args) {
      if (a.kind != Type::none && has_primitive_type(a, v)) return;
    }
    fail(where + ": " + shown(v) + " is not a " + t.text + "; re-export the bundle");
  }
  if (t.kind == Type::dataclass) return validate_fields(v, t.text, where);
  if (t.kind == Type::tuple) {
    if (!v.is_array()) fail(where + ": expected a list, got " + python_type(v));
    for (std::size_t i = 0; i < v.size(); ++i) check_value(t.args[0], v[i], where + "[" + std::to_string(i) + "]");
    return;
  }
  if (!has_primitive_type(t, v)) fail(where + ": " + shown(v) + " is not a " + t.text + "; re-export the bundle");
}

std::string python_list(const std::set<std::string>& names) {
  std::string s = "[";
  for (const auto& n : names) s += (s.size() > 1 ? ", '" : "'") + n + "'";
  return s + "]";
}

}  // namespace

void validate_fields(const nlohmann::json& data, std::string_view cls, const std::string& where) {
  if (!data.is_object()) fail(where + ": expected an object, got " + python_type(data));
  std::set<std::string> missing, unknown;
  for (const Field& f : kFields) {
    if (f.cls == cls && f.required && !data.contains(std::string(f.name))) missing.insert(std::string(f.name));
  }
  for (const auto& item : data.items()) {
    bool known = std::any_of(std::begin(kFields), std::end(kFields),
                             [&](const Field& f) { return f.cls == cls && f.name == item.key(); });
    if (!known) unknown.insert(item.key());
  }
  if (!missing.empty() || !unknown.empty()) {
    fail(where + ": missing fields " + python_list(missing) + ", unknown fields " + python_list(unknown) +
         "; re-export the bundle");
  }
  for (const auto& item : data.items()) {
    for (const Field& f : kFields) {
      if (f.cls == cls && f.name == item.key()) check_value(parse(f.annotation), item.value(), where + "." + item.key());
    }
  }
}

std::vector<std::string> schema_classes() {
  std::vector<std::string> out;
  for (const Field& f : kFields) {
    if (std::find(out.begin(), out.end(), f.cls) == out.end()) out.emplace_back(f.cls);
  }
  return out;
}

void check_schema_table() {
  for (const Field& f : kFields) parse(f.annotation);
}

}  // namespace ttdeploy::detail
