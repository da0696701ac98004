#include "comm/communicator.h"

namespace shardtrain {

size_t comm_dtype_size(CommDType t) {
  switch (t) {
    case CommDType::kFloat32: return 4;
    case CommDType::kFloat64: return 8;
    case CommDType::kInt64: return 8;
    case CommDType::kInt32: return 4;
    case CommDType::kUint8: return 1;
    case CommDType::kBFloat16: return 2;
  }
  return 0;
}

}  // namespace shardtrain
