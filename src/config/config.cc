#include "config/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "config/overrides.h"
#include "config/validate.h"

namespace shardtrain {
namespace {

// Protobuf reports 0-based line/column and by default logs to stderr; we keep the first
// error instead and turn it into "origin:LINE:COL: message" (1-based, as editors count).
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit FirstErrorCollector(std::string origin) : origin_(std::move(origin)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;
    first_ = origin_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  // Warnings (e.g. deprecated fields) do not stop a run.
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string origin_;
  std::string first_;
};

// Parses only; overrides and validation are the callers' steps.
StatusOr<config::JobConfig> parse_text(const std::string& text, const std::string& origin) {
  config::JobConfig cfg;
  FirstErrorCollector errors(origin);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &cfg)) {
    return Status::InvalidArgument(errors.first().empty() ? origin + ": cannot parse config" : errors.first());
  }
  return cfg;
}

}  // namespace

StatusOr<config::JobConfig> load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("config file " + path + ": cannot open");
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status::DataLoss("config file " + path + ": read failed");

  ASSIGN_OR_RETURN(config::JobConfig cfg, parse_text(buf.str(), path));
  for (const std::string& assignment : overrides) RETURN_IF_ERROR(apply_override(&cfg, assignment));
  RETURN_IF_ERROR(validate_config(cfg).WithContext(path));
  return cfg;
}

StatusOr<config::JobConfig> parse_config_text(const std::string& text, const std::string& origin) {
  ASSIGN_OR_RETURN(config::JobConfig cfg, parse_text(text, origin));
  RETURN_IF_ERROR(validate_config(cfg).WithContext(origin));
  return cfg;
}

std::string config_to_text(const config::JobConfig& cfg) {
  // Floats print as the shortest text that parses back to the same value, so the
  // round trip is exact.
  std::string out;
  google::protobuf::TextFormat::PrintToString(cfg, &out);
  return out;
}

}  // namespace shardtrain
