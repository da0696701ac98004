#include "comm/make_communicator.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "comm/agree.h"
#include "comm/comm_choice.h"
#include "comm/host_staged_communicator.h"
#include "comm/nccl/nccl_communicator.h"
#include "comm/sequence_check.h"
#include "core/log.h"

namespace shardtrain {
namespace {

// Identities travel as fixed-size, NUL-padded records so one all_gather moves them all.
// 256 bytes hold a hostname (at most 64 on Linux) and a "GPU-<uuid>" with room to spare;
// a longer identity is cut at 255 bytes, the same way on every rank.
constexpr int64_t kIdentityBytes = 256;

// The device communicator's name in watchdog messages: it carries gradients (and the
// parameter broadcast at start).
constexpr const char* kDeviceLabel = "grad";

StatusOr<std::vector<std::string>> gather_identities(MpiCommunicator& control, const std::string& mine) {
  std::vector<uint8_t> send(kIdentityBytes, 0);
  std::copy_n(mine.begin(), std::min<size_t>(mine.size(), kIdentityBytes - 1), send.begin());
  std::vector<uint8_t> recv(kIdentityBytes * control.world_size(), 0);
  RETURN_IF_ERROR(control.all_gather(send.data(), recv.data(), kIdentityBytes, CommDType::kUint8)
                      .WithContext("gathering every rank's device identity"));
  std::vector<std::string> out;
  for (int r = 0; r < control.world_size(); ++r) {
    const char* rec = reinterpret_cast<const char*>(recv.data() + r * kIdentityBytes);
    out.emplace_back(rec, strnlen(rec, kIdentityBytes));
  }
  return out;
}

// Builds the MPI-based kinds over a private duplicate of control's MPI communicator, so
// gradient traffic can never match a control message.
StatusOr<std::unique_ptr<Communicator>> make_mpi_kind(CommKind kind, Backend& backend, MpiCommunicator& control) {
  ASSIGN_OR_RETURN(auto mpi, MpiCommunicator::create_dup(control.mpi_comm(), control.watchdog_ptr(), kDeviceLabel));
  if (kind == CommKind::kMpi) return std::unique_ptr<Communicator>(std::move(mpi));
  return std::unique_ptr<Communicator>(new HostStagedCommunicator(std::move(mpi), backend));
}

}  // namespace

Status configure_watchdog(Watchdog& watchdog, const config::CommConfig& cfg, MPI_Comm comm) {
  watchdog.set_timeout(cfg.timeout_s());
  if (cfg.check_sequence() && watchdog.sequence_check() == nullptr) {
    ASSIGN_OR_RETURN(auto check, SequenceCheck::create(comm));
    watchdog.set_sequence_check(std::move(check));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Communicator>> make_device_communicator(const config::CommConfig& cfg, Backend& backend,
                                                                 MpiCommunicator& control, const Topology& topo) {
  // The gather is collective and errors in it are MPI failures on every rank alike; the
  // choice is the same everywhere (same inputs), but agree anyway so that any rank's
  // local failure becomes every rank's error.
  ASSIGN_OR_RETURN(const auto identities, gather_identities(control, topo.hostname + "/" + backend.device_identity()));
  StatusOr<CommChoice> choice = choose_comm(cfg.backend(), backend.device(), nccl_built(), identities);
  RETURN_IF_ERROR(agree_on_status(control, choice.status()));

  std::unique_ptr<Communicator> comm;
  if (choice->kind == CommKind::kNccl) {
    // Agrees across ranks internally (before and after NCCL's init).
    ASSIGN_OR_RETURN(comm, make_nccl_communicator(backend, control.mpi_comm(), control.watchdog_ptr(), kDeviceLabel));
  } else {
    StatusOr<std::unique_ptr<Communicator>> made = make_mpi_kind(choice->kind, backend, control);
    RETURN_IF_ERROR(agree_on_status(control, made.status()));
    comm = std::move(made).value();
  }

  if (control.rank() == 0) {
    if (choice->note.empty()) {
      log_info(std::string("comm: ") + comm_kind_name(choice->kind));
    } else {
      log_warn("comm: " + choice->note);
    }
  }
  return comm;
}

}  // namespace shardtrain
