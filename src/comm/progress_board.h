// ProgressBoard: how far each rank of one communicator has got — its last issued and last
// completed collective sequence number, and when it last showed signs of life — in shared
// memory mapped by the ranks on one host, so that a rank whose collective timed out can
// name the peer that never joined it, or joined it and then stopped responding.
//
// Why shared memory: a stopped (SIGSTOP), swapped-out or hung peer cannot answer a
// message, and MPI's RMA windows need the target's help (osc/pt2pt) or a collective
// MPI_Win_free (osc/sm, a barrier) that one stuck rank would hang. A POSIX shared-memory
// segment is read with plain atomic loads: no MPI call, no help from the peer, usable from
// any thread (NCCL's watchdog thread too). The segment is unlinked as soon as every rank
// has mapped it, so it disappears with the processes however they end.
//
// Ranks on other hosts cannot be seen this way; read() marks them unknown and the
// watchdog says so instead of guessing.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"

namespace shardtrain {

struct PeerProgress {
  int rank = 0;
  bool known = false;      // on this host (its slot is mapped here)
  int64_t issued = 0;      // last sequence number it issued (0: none yet)
  int64_t completed = 0;   // last sequence number it completed
  double silent_s = 0;     // seconds since it last issued, completed or polled a collective
};

class ProgressBoard {
 public:
  // Collective over `comm` (blocking MPI calls, like making the communicator itself).
  // Returns an MPI failure as an error; returns null, after one warning on the host's
  // first rank, when shared memory cannot be set up (no /dev/shm): then peers' progress is
  // simply unknown.
  static StatusOr<std::unique_ptr<ProgressBoard>> create(MPI_Comm comm);
  ~ProgressBoard();
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;

  // This rank's own slot. Thread-safe (atomic stores); sequence numbers only grow, so
  // completions reported out of order keep the largest. Each also counts as alive.
  void publish_issued(int64_t seq);
  void publish_completed(int64_t seq);
  // "Still here": called while waiting (at least every millisecond on MPI, every 100 ms
  // from NCCL's watchdog thread), so a peer that joined a collective and went silent is
  // told from one that waits. Uses CLOCK_MONOTONIC, which all processes of a host share.
  void publish_alive();

  // Every rank of the communicator, in rank order. Thread-safe; no MPI.
  std::vector<PeerProgress> read() const;

 private:
  struct Slot;
  ProgressBoard() = default;
  Slot* slots_ = nullptr;         // local_size slots, in the host's local rank order
  size_t bytes_ = 0;              // mapped length
  Slot* mine_ = nullptr;
  std::vector<int> local_of_;     // comm rank -> local slot index, -1 on another host
};

}  // namespace shardtrain
