// Status / StatusOr: how library code reports failure. Only the CLI decides to exit.
//
// A Status carries a code and one human-readable line naming the file, field, tensor or
// rank involved. Codes map to process exit codes in cli/ (usage/config errors exit 2).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace shardtrain {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // bad config value, bad flag, impossible shape: exit code 2
  kNotFound,           // missing file, dataset, tensor
  kDataLoss,           // truncated or corrupt data / checkpoint
  kFailedPrecondition, // state does not allow the operation (e.g. run dir already used)
  kUnavailable,        // device or library not usable here (no GPU, no NCCL)
  kInternal,           // a library call (MPI, HDF5, CUDA) failed
  kDeadlineExceeded,   // a collective did not complete within comm.timeout_s: the CLI
                       // aborts the job with exit code 76 (cli/runtime.h)
  kNonFinite,          // training diverged: a loss, gradient or parameter is NaN/inf (exit code 3)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
  static Status NonFinite(std::string m) { return {StatusCode::kNonFinite, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy with `prefix: ` prepended to the message (adds context while passing up).
  Status WithContext(const std::string& prefix) const {
    if (ok()) return *this;
    return Status(code_, prefix + ": " + message_);
  }

 private:
  Status(StatusCode c, std::string m) : code_(c), message_(std::move(m)) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : status_(std::move(s)) { assert(!status_.ok()); }  // NOLINT: implicit by design
  StatusOr(T v) : value_(std::move(v)) {}                                 // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace shardtrain

#define ST_CONCAT_INNER(a, b) a##b
#define ST_CONCAT(a, b) ST_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                              \
  do {                                                     \
    ::shardtrain::Status st_status_ = (expr);              \
    if (!st_status_.ok()) return st_status_;               \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a StatusOr or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(ST_CONCAT(st_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
