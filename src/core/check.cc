#include "core/check.h"

#include <mpi.h>

namespace shardtrain {

std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

std::string where(const char* file, int line) {
  std::string f(file);
  auto pos = f.rfind("src/");
  if (pos != std::string::npos) f = f.substr(pos + 4);
  return f + ":" + std::to_string(line);
}

}  // namespace shardtrain
