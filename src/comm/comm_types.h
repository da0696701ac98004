// The vocabulary shared by communicators and their watchdog: reduction ops and element
// types of collective buffers. Split from communicator.h so comm/watchdog.h can use it
// without including the Communicator interface (which includes the watchdog).
#pragma once

#include <cstddef>

namespace shardtrain {

enum class ReduceOp { kSum, kMax };
// kBFloat16: gradients on the wire under comm.grad_dtype BF16 (NCCL only: MPI has no
// bf16 type; see Communicator::supports_bf16).
enum class CommDType { kFloat32, kFloat64, kInt64, kInt32, kUint8, kBFloat16 };
size_t comm_dtype_size(CommDType t);
const char* comm_dtype_name(CommDType t);  // "float32", "float64", "int64", "int32", "uint8", "bfloat16"

}  // namespace shardtrain
