// The MPI side of the addon, free of Node-API: process-global state, communicators by id, and
// collectives polled against a time-out. mpi_addon.cc turns these into JavaScript functions.
//
// One MPI library serves the whole process, so the state is process-global and guarded by a
// mutex: the main thread initialises MPI (MPI_THREAD_MULTIPLE) and creates communicators; any
// thread may then run collectives on them by integer id.
#pragma once

#include <mpi.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace tgmpi {

// A failure with a stable code (becomes error.code in JavaScript).
struct Failure : std::runtime_error {
  std::string code;
  Failure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

struct Comm {
  MPI_Comm handle = MPI_COMM_NULL;
  int id = 0;
  // MPI allows one collective at a time per communicator and process; a second thread that
  // tries gets an error instead of undefined behaviour.
  std::atomic<bool> busy{false};
  // Set when a request was abandoned (time-out or error): MPI may still use its buffer, and the
  // peers' views of the communicator have diverged, so nothing may run on it again.
  std::atomic<bool> broken{false};
  // Set by commFree (MPI_Comm_free): the id stays reserved and every later call on it fails.
  std::atomic<bool> freed{false};
};

const int kWorld = 0;
const int kLocal = 1;

struct WorldInfo {
  int rank, size, localRank, localSize;
};

// "1500", "0.5": numbers in messages as JavaScript would print them.
std::string formatNumber(double value);

// Throws MPI_ERROR with MPI's own text unless rc is MPI_SUCCESS.
void check(int rc, const std::string& where);

// The communicator with this id (throws when MPI is not running or the id is unknown). The
// pointer stays valid: entries are never deleted.
Comm* lookup(const std::string& where, int id);

// Holds a communicator for one collective; released on success or on an error MPI reported before
// any request was started. An abandoned request leaves it claimed and marks it broken.
class Claim {
 public:
  Claim(const std::string& where, int id);
  ~Claim();
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  MPI_Comm handle() const { return comm_->handle; }
  int id() const { return comm_->id; }
  bool isAbandoned() const { return abandoned_; }
  void abandon();

 private:
  Comm* comm_;
  bool abandoned_ = false;
};

enum class Kind { AllReduce, Broadcast, Barrier };

// One collective, described so that it can run in the calling thread or in the thread pool.
struct Collective {
  std::string where;
  Kind kind = Kind::Barrier;
  void* data = nullptr;
  int count = 0;
  MPI_Datatype type = MPI_BYTE;
  MPI_Op op = MPI_SUM;
  int root = 0;
  double timeoutMs = 0;
};

// Starts the collective on the claimed communicator and polls it to completion or time-out.
void run(Claim& claim, const Collective& c);

// Initialises MPI on the first call (MPI_THREAD_MULTIPLE, MPI_ERRORS_RETURN, the host
// communicator); later calls return the same numbers.
WorldInfo initialize();
WorldInfo worldInfo(const std::string& where);
void commRankSize(const std::string& where, int id, int* rank, int* size);

// A new communicator from comm: split by (color, key), or a duplicate. Returns its id, or -1
// when color < 0 (this process joins none).
int commCreate(const std::string& where, int parentId, bool isSplit, int color, int key, double timeoutMs);

// Frees a communicator made by commCreate (MPI_Comm_free); refuses WORLD and LOCAL, one that is in
// use or broken, and one already freed. Its id is never reused.
void commFree(const std::string& where, int id);

// How many communicators made by commCreate are not freed yet.
int commCount(const std::string& where);

void abortJob(int errorCode);
void finalize();
std::string libraryVersion();

}  // namespace tgmpi
