#include "config/config.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "config/overrides.h"
#include "config/validate.h"

namespace shardtrain {
namespace {

// Protobuf reports 0-based line/column and by default logs to stderr; we keep the first
// error instead and turn it into "origin:LINE:COL: message" (1-based, as editors count).
// For a bad name (unknown field or enum value) protobuf points just past the name; we move
// the column back to where the name starts, which is what a user wants to jump to.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  FirstErrorCollector(const std::string& text, std::string origin) : text_(text), origin_(std::move(origin)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;
    if (line >= 0) move_to_named_token(&line, &column, message);
    // The tokenizer names the offending token after "got: "; at the end of the text there is
    // none, which reads as a truncated message unless we say so.
    std::string text = message;
    if (text.size() >= 5 && text.compare(text.size() - 5, 5, "got: ") == 0) text += "end of file (missing '}'?)";
    first_ = origin_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + text;
  }
  // Warnings (e.g. deprecated fields) do not stop a run.
  void AddWarning(int, google::protobuf::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  // If a quoted name from `message` is the last token before (line, column) in the text
  // (blank lines and spaces between are fine), moves (line, column) to its start.
  void move_to_named_token(int* line, int* column, const std::string& message) const {
    size_t pos = 0;  // offset of (line, column) in text_
    for (int i = 0; i < *line; ++i) {
      pos = text_.find('\n', pos);
      if (pos == std::string::npos) return;
      ++pos;
    }
    size_t end = std::min(pos + *column, text_.size());
    while (end > 0 && std::isspace(static_cast<unsigned char>(text_[end - 1]))) --end;
    for (size_t q = message.find('"'); q != std::string::npos; q = message.find('"', q + 1)) {
      const size_t close = message.find('"', q + 1);
      if (close == std::string::npos) return;
      const std::string name = message.substr(q + 1, close - q - 1);
      if (!name.empty() && name.size() <= end && text_.compare(end - name.size(), name.size(), name) == 0) {
        const size_t start = end - name.size();
        const size_t line_start = start == 0 ? 0 : text_.rfind('\n', start - 1) + 1;  // npos + 1 == 0
        *line = static_cast<int>(std::count(text_.begin(), text_.begin() + start, '\n'));
        *column = static_cast<int>(start - line_start);
        return;
      }
      q = close;
    }
  }

  const std::string& text_;
  std::string origin_;
  std::string first_;
};

// Parses only; overrides and validation are the callers' steps.
StatusOr<config::JobConfig> parse_text(const std::string& text, const std::string& origin) {
  config::JobConfig cfg;
  FirstErrorCollector errors(text, origin);
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
