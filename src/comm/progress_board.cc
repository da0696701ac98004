#include "comm/progress_board.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "core/check.h"
#include "core/log.h"

namespace shardtrain {

// One cache line per rank: each rank writes its own at every collective, and must not
// slow the others' writes down by sharing a line with them.
struct alignas(64) ProgressBoard::Slot {
  int64_t issued;
  int64_t completed;
  int64_t alive_ns;  // CLOCK_MONOTONIC
};

namespace {

constexpr int kNameBytes = 64;

int64_t monotonic_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// A name no other job on this host uses: pid, a per-process counter and the clock.
std::string segment_name(int attempt) {
  static std::atomic<int> counter{0};
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return "/shardtrain-board-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
         std::to_string((now + attempt) % 1000000007);
}

// Creates and sizes a fresh segment; returns its name, or "" (with the reason in *why).
std::string create_segment(size_t bytes, std::string* why) {
  for (int attempt = 0; attempt < 4; ++attempt) {
    const std::string name = segment_name(attempt);
    const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;
      *why = "shm_open " + name + ": " + std::strerror(errno);
      return "";
    }
    const bool sized = ftruncate(fd, static_cast<off_t>(bytes)) == 0;  // zero-filled
    if (!sized) *why = "ftruncate " + name + ": " + std::strerror(errno);
    close(fd);
    if (sized) return name;
    shm_unlink(name.c_str());
    return "";
  }
  *why = "shm_open: no unused name";
  return "";
}

void* map_segment(const std::string& name, size_t bytes, std::string* why) {
  const int fd = shm_open(name.c_str(), O_RDWR, 0600);
  if (fd < 0) {
    *why = "shm_open " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);  // the mapping keeps the segment
  if (p == MAP_FAILED) {
    *why = "mmap " + name + ": " + std::strerror(errno);
    return nullptr;
  }
  return p;
}

}  // namespace

StatusOr<std::unique_ptr<ProgressBoard>> ProgressBoard::create(MPI_Comm comm) {
  int rank = 0, size = 0;
  MPI_CHECK(MPI_Comm_rank(comm, &rank));
  MPI_CHECK(MPI_Comm_size(comm, &size));
  MPI_Comm local = MPI_COMM_NULL;
  MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &local));
  // From here every rank makes the same MPI calls whatever fails locally, so a shared
  // memory problem on one rank cannot leave the others waiting.
  std::unique_ptr<ProgressBoard> board(new ProgressBoard());
  std::string why;
  auto body = [&]() -> Status {
    int local_rank = 0, local_size = 0;
    MPI_CHECK(MPI_Comm_rank(local, &local_rank));
    MPI_CHECK(MPI_Comm_size(local, &local_size));

    // Which comm rank each local slot belongs to.
    MPI_Group local_group = MPI_GROUP_NULL, comm_group = MPI_GROUP_NULL;
    MPI_CHECK(MPI_Comm_group(local, &local_group));
    MPI_CHECK(MPI_Comm_group(comm, &comm_group));
    std::vector<int> local_ranks(local_size), comm_ranks(local_size);
    for (int i = 0; i < local_size; ++i) local_ranks[i] = i;
    const int translated =
        MPI_Group_translate_ranks(local_group, local_size, local_ranks.data(), comm_group, comm_ranks.data());
    MPI_Group_free(&local_group);
    MPI_Group_free(&comm_group);
    MPI_CHECK(translated);
    board->local_of_.assign(size, -1);
    for (int i = 0; i < local_size; ++i) board->local_of_[comm_ranks[i]] = i;

    const size_t bytes = sizeof(Slot) * static_cast<size_t>(local_size);
    char name[kNameBytes] = {0};
    if (local_rank == 0) {
      const std::string made = create_segment(bytes, &why);
      std::strncpy(name, made.c_str(), kNameBytes - 1);
    }
    MPI_CHECK(MPI_Bcast(name, kNameBytes, MPI_CHAR, 0, local));
    void* mapped = nullptr;
    if (name[0] != '\0') mapped = map_segment(name, bytes, &why);
    // Everyone has mapped it (or failed to): the name can go, the memory stays mapped.
    const int arrived = MPI_Barrier(local);
    if (local_rank == 0 && name[0] != '\0') shm_unlink(name);
    MPI_CHECK(arrived);
    if (mapped != nullptr) {
      board->slots_ = static_cast<Slot*>(mapped);
      board->bytes_ = bytes;
      board->mine_ = board->slots_ + local_rank;
    } else if (local_rank == 0 || name[0] != '\0') {
      log_warn("collective watchdog: no shared-memory progress board (" + why +
               "): a timeout will not say which rank is stuck");
    }
    return Status::Ok();
  };
  const Status st = body();
  MPI_Comm_free(&local);  // only returns resources; the error that matters is st
  RETURN_IF_ERROR(st);
  if (board->slots_ == nullptr) return std::unique_ptr<ProgressBoard>();
  return board;
}

ProgressBoard::~ProgressBoard() {
  if (slots_ != nullptr) munmap(slots_, bytes_);
}

void ProgressBoard::publish_alive() { __atomic_store_n(&mine_->alive_ns, monotonic_ns(), __ATOMIC_RELAXED); }

void ProgressBoard::publish_issued(int64_t seq) {
  publish_alive();
  __atomic_store_n(&mine_->issued, seq, __ATOMIC_RELEASE);
}

void ProgressBoard::publish_completed(int64_t seq) {
  publish_alive();
  // Only this rank writes its slot, but NCCL completes from its watchdog thread while the
  // main thread may complete too: keep the largest.
  int64_t seen = __atomic_load_n(&mine_->completed, __ATOMIC_RELAXED);
  while (seen < seq &&
         !__atomic_compare_exchange_n(&mine_->completed, &seen, seq, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
  }
}

std::vector<PeerProgress> ProgressBoard::read() const {
  const int64_t now = monotonic_ns();
  std::vector<PeerProgress> out(local_of_.size());
  for (size_t r = 0; r < local_of_.size(); ++r) {
    out[r].rank = static_cast<int>(r);
    const int i = local_of_[r];
    if (i < 0) continue;
    out[r].known = true;
    out[r].issued = __atomic_load_n(&slots_[i].issued, __ATOMIC_ACQUIRE);
    out[r].completed = __atomic_load_n(&slots_[i].completed, __ATOMIC_ACQUIRE);
    const int64_t alive = __atomic_load_n(&slots_[i].alive_ns, __ATOMIC_RELAXED);
    out[r].silent_s = alive > 0 ? static_cast<double>(now - alive) * 1e-9 : 0;
  }
  return out;
}

}  // namespace shardtrain
