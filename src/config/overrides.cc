#include "config/overrides.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

namespace shardtrain {
namespace {

using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Fields that form an "exactly one of" pair without being a proto oneof (proto2 oneofs
// cannot carry the per-field defaults and comments the schema wants). Setting one by
// --set clears the other, so `--set train.epochs=3` works on a config that sets steps.
struct ExclusivePair {
  const char* message;  // full name of the message holding both fields
  const char* a;
  const char* b;
};
constexpr ExclusivePair kExclusivePairs[] = {
    {"shardtrain.config.TrainConfig", "steps", "epochs"},
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t begin = 0;
  while (true) {
    size_t dot = path.find('.', begin);
    parts.push_back(path.substr(begin, dot - begin));
    if (dot == std::string::npos) return parts;
    begin = dot + 1;
  }
}

bool iequals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// "Device" -> "DEVICE_", "LossKind" -> "LOSS_KIND_": the prefix our enum values carry.
std::string enum_value_prefix(const EnumDescriptor* e) {
  std::string out;
  for (char c : e->name()) {
    if (std::isupper(static_cast<unsigned char>(c)) && !out.empty()) out += '_';
    out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out + "_";
}

// DEVICE_CUDA -> "CUDA": the value name without its enum-type prefix.
std::string enum_value_short_name(const EnumValueDescriptor* v) {
  const std::string prefix = enum_value_prefix(v->type());
  const std::string& name = v->name();
  return name.compare(0, prefix.size(), prefix) == 0 ? name.substr(prefix.size()) : name;
}

const EnumValueDescriptor* find_enum_value(const EnumDescriptor* e, const std::string& text) {
  if (const EnumValueDescriptor* v = e->FindValueByName(text)) return v;
  for (int i = 0; i < e->value_count(); ++i) {
    const EnumValueDescriptor* v = e->value(i);
    if (iequals(enum_value_short_name(v), text) || iequals(v->name(), text)) return v;
  }
  return nullptr;
}

// "cpu, cuda": the short spellings, for error messages.
std::string enum_choices(const EnumDescriptor* e) {
  std::string out;
  for (int i = 0; i < e->value_count(); ++i) {
    std::string bare = enum_value_short_name(e->value(i));
    for (char& c : bare) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += (i ? ", " : "") + bare;
  }
  return out;
}

// Whole-string integer parse; false on junk, empty input or overflow of [lo, hi].
template <typename T>
bool parse_int(const std::string& s, T* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  if (std::numeric_limits<T>::is_signed) {
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno || *end || v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(v);
  } else {
    if (s[0] == '-') return false;  // strtoull would wrap "-1" to 2^64 - 1
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (errno || *end || v > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(v);
  }
  return true;
}

// Whole-string float parse. NaN/inf parse here; validate_config() rejects them where they
// make no sense, with the field's name.
bool parse_double(const std::string& s, double* out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(s.c_str(), &end);
  return !*end && errno != ERANGE;
}

bool parse_bool(const std::string& s, bool* out) {
  if (iequals(s, "true") || s == "1") return *out = true, true;
  if (iequals(s, "false") || s == "0") return *out = false, true;
  return false;
}

// Sets scalar field `f` of `msg` from `text`; returns the reason on failure ("" if ok).
std::string set_scalar(Message* msg, const FieldDescriptor* f, const std::string& text) {
  const Reflection* r = msg->GetReflection();
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!parse_int(text, &v)) return "not a valid int32";
      r->SetInt32(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!parse_int(text, &v)) return "not a valid int64";
      r->SetInt64(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!parse_int(text, &v)) return "not a valid uint32";
      r->SetUInt32(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!parse_int(text, &v)) return "not a valid uint64";
      r->SetUInt64(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double v;
      if (!parse_double(text, &v) || (std::abs(v) > std::numeric_limits<float>::max() && std::isfinite(v)))
        return "not a valid float";
      r->SetFloat(msg, f, static_cast<float>(v));
      return "";
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      double v;
      if (!parse_double(text, &v)) return "not a valid double";
      r->SetDouble(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool v;
      if (!parse_bool(text, &v)) return "not a valid bool (true or false)";
      r->SetBool(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_STRING:
      r->SetString(msg, f, text);
      return "";
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumValueDescriptor* v = find_enum_value(f->enum_type(), text);
      if (!v) return "not a valid " + f->enum_type()->name() + " (one of: " + enum_choices(f->enum_type()) + ")";
      r->SetEnum(msg, f, v);
      return "";
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "unsupported field type";
}

void clear_exclusive_partner(Message* msg, const FieldDescriptor* f) {
  for (const ExclusivePair& pair : kExclusivePairs) {
    if (msg->GetDescriptor()->full_name() != pair.message) continue;
    const char* other = f->name() == pair.a ? pair.b : f->name() == pair.b ? pair.a : nullptr;
    if (!other) continue;
    const FieldDescriptor* o = msg->GetDescriptor()->FindFieldByName(other);
    if (o) msg->GetReflection()->ClearField(msg, o);
  }
}

}  // namespace

Status apply_override(config::JobConfig* cfg, const std::string& assignment) {
  const auto fail = [&](const std::string& why) { return Status::InvalidArgument("--set " + assignment + ": " + why); };
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) return fail("expected path=value (e.g. train.steps=200)");
  const std::string path = assignment.substr(0, eq);
  const std::string value = assignment.substr(eq + 1);

  // Work on a copy so a failed assignment leaves *cfg untouched (no half-created paths).
  config::JobConfig updated = *cfg;
  const std::vector<std::string> parts = split_path(path);
  Message* msg = &updated;
  std::string walked;  // dotted path so far, for messages
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    walked += (i ? "." : "") + parts[i];
    const FieldDescriptor* f = msg->GetDescriptor()->FindFieldByName(parts[i]);
    if (!f) return fail(msg->GetDescriptor()->name() + " has no field '" + parts[i] + "'");
    if (f->is_repeated())
      return fail("'" + walked + "' is a repeated field; --set does not support repeated fields (edit the config file)");
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (last) return fail("'" + walked + "' is a message, not a scalar");
      msg = msg->GetReflection()->MutableMessage(msg, f);
      continue;
    }
    if (!last) return fail("'" + walked + "' is a scalar, not a message");
    const std::string why = set_scalar(msg, f, value);
    if (!why.empty()) return fail(why);
    clear_exclusive_partner(msg, f);
  }
  *cfg = std::move(updated);
  return Status::Ok();
}

}  // namespace shardtrain
