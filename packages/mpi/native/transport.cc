// See transport.h. MPI_ERRORS_RETURN is installed on every communicator, so MPI failures come back
// as return codes and become Failure exceptions carrying MPI's own error string.
#include "transport.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace tgmpi {
namespace {

std::mutex g_mutex;
bool g_initialized = false;
bool g_finalized = false;
std::thread::id g_initThread;
WorldInfo g_world{0, 1, 0, 1};
// Index = communicator id; entries are never deleted, so a Comm* stays valid once looked up.
std::vector<Comm*> g_comms;
// Set once any request was abandoned: finalize would wait for it forever.
std::atomic<bool> g_abandoned{false};

std::string mpiErrorString(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return "MPI error code " + std::to_string(rc);
  return std::string(text, length);
}

// Caller holds g_mutex.
void requireInitialized(const std::string& where) {
  if (!g_initialized) {
    throw Failure("MPI_NOT_INITIALIZED", where + ": MPI is not initialised: call init() on the main thread first");
  }
  if (g_finalized) throw Failure("MPI_FINALIZED", where + ": MPI was finalised");
}

int registerComm(MPI_Comm handle) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Comm* comm = new Comm();
  comm->handle = handle;
  comm->id = static_cast<int>(g_comms.size());
  g_comms.push_back(comm);
  return comm->id;
}

// Polls a started request until it completes or timeoutMs passes. MPI_Test is also what moves a
// non-blocking collective forward (Open MPI has no progress thread for it), so the loop spins for
// a while before it starts sleeping, and never sleeps long.
void waitFor(Claim& claim, MPI_Request* request, double timeoutMs, const std::string& where) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto spinUntil = start + std::chrono::milliseconds(20);
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(timeoutMs));
  auto pause = std::chrono::microseconds(10);
  for (;;) {
    int done = 0;
    int rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
      claim.abandon();
      check(rc, where);
    }
    if (done) return;
    const auto now = Clock::now();
    if (now >= deadline) {
      claim.abandon();
      throw Failure("MPI_TIMEOUT", where + ": time-out after " + formatNumber(timeoutMs) + " ms on communicator " +
                                       std::to_string(claim.id()) +
                                       ": a process did not join (stopped, crashed or on another call)");
    }
    if (now < spinUntil) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(100));
    }
  }
}

void initOnce() {
  int already = 0;
  check(MPI_Initialized(&already), "mpi.init");
  if (already) throw Failure("MPI_ARG", "mpi.init: MPI was initialised by someone else in this process");
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided), "mpi.init");
  g_initialized = true;
  g_initThread = std::this_thread::get_id();
  check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "mpi.init");
  if (provided < MPI_THREAD_MULTIPLE) {
    throw Failure("MPI_THREAD_LEVEL", "mpi.init: the MPI library gives thread level " + std::to_string(provided) +
                                          "; threadgrad needs MPI_THREAD_MULTIPLE (" +
                                          std::to_string(MPI_THREAD_MULTIPLE) + ")");
  }
  check(MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank), "mpi.init");
  check(MPI_Comm_size(MPI_COMM_WORLD, &g_world.size), "mpi.init");
  MPI_Comm local = MPI_COMM_NULL;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world.rank, MPI_INFO_NULL, &local), "mpi.init");
  check(MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN), "mpi.init");
  check(MPI_Comm_rank(local, &g_world.localRank), "mpi.init");
  check(MPI_Comm_size(local, &g_world.localSize), "mpi.init");
  Comm* world = new Comm();
  world->handle = MPI_COMM_WORLD;
  world->id = kWorld;
  Comm* host = new Comm();
  host->handle = local;
  host->id = kLocal;
  g_comms = {world, host};
}

}  // namespace

std::string formatNumber(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

void check(int rc, const std::string& where) {
  if (rc != MPI_SUCCESS) throw Failure("MPI_ERROR", where + ": MPI error: " + mpiErrorString(rc));
}

Comm* lookup(const std::string& where, int id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  requireInitialized(where);
  if (id >= 0 && static_cast<size_t>(id) < g_comms.size() && g_comms[id]->freed.load()) {
    throw Failure("MPI_BAD_COMM", where + ": communicator " + std::to_string(id) + " was freed (commFree)");
  }
  if (id < 0 || static_cast<size_t>(id) >= g_comms.size() || g_comms[id]->handle == MPI_COMM_NULL) {
    throw Failure("MPI_BAD_COMM", where + ": unknown communicator " + std::to_string(id));
  }
  return g_comms[id];
}

namespace {

Failure brokenFailure(const std::string& where, int id) {
  return Failure("MPI_BROKEN", where + ": communicator " + std::to_string(id) +
                                   " is unusable: an earlier call on it timed out or failed");
}

Failure busyFailure(const std::string& where, int id) {
  return Failure("MPI_BUSY", where + ": communicator " + std::to_string(id) +
                                 " is in use by another call; give each thread its own (commDup)");
}

}  // namespace

Claim::Claim(const std::string& where, int id) : comm_(lookup(where, id)) {
  if (comm_->broken.load()) throw brokenFailure(where, id);
  if (comm_->busy.exchange(true)) throw busyFailure(where, id);
  // commFree sets freed before it lets go of busy: a claim that won busy after it sees freed here.
  if (comm_->freed.load()) {
    comm_->busy.store(false);
    throw Failure("MPI_BAD_COMM", where + ": communicator " + std::to_string(id) + " was freed (commFree)");
  }
}

Claim::~Claim() {
  if (!abandoned_) comm_->busy.store(false);
}

void Claim::abandon() {
  abandoned_ = true;
  comm_->broken.store(true);
  g_abandoned.store(true);
}

void run(Claim& claim, const Collective& c) {
  MPI_Request request = MPI_REQUEST_NULL;
  int rc = MPI_SUCCESS;
  switch (c.kind) {
    case Kind::AllReduce:
      rc = MPI_Iallreduce(MPI_IN_PLACE, c.data, c.count, c.type, c.op, claim.handle(), &request);
      break;
    case Kind::Broadcast:
      rc = MPI_Ibcast(c.data, c.count, MPI_BYTE, c.root, claim.handle(), &request);
      break;
    case Kind::Barrier:
      rc = MPI_Ibarrier(claim.handle(), &request);
      break;
  }
  check(rc, c.where);
  waitFor(claim, &request, c.timeoutMs, c.where);
}

WorldInfo initialize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_finalized) throw Failure("MPI_FINALIZED", "mpi.init: MPI was finalised and cannot start again");
  if (!g_initialized) initOnce();
  return g_world;
}

WorldInfo worldInfo(const std::string& where) {
  std::lock_guard<std::mutex> lock(g_mutex);
  requireInitialized(where);
  return g_world;
}

void commRankSize(const std::string& where, int id, int* rank, int* size) {
  Comm* comm = lookup(where, id);
  check(MPI_Comm_rank(comm->handle, rank), where);
  check(MPI_Comm_size(comm->handle, size), where);
}

// MPI has no non-blocking split, so a barrier with the time-out runs first: once every process
// has reached it, the blocking call cannot wait for a missing one.
int commCreate(const std::string& where, int parentId, bool isSplit, int color, int key, double timeoutMs) {
  MPI_Comm out = MPI_COMM_NULL;
  {
    Claim claim(where, parentId);
    Collective barrier;
    barrier.where = where;
    barrier.timeoutMs = timeoutMs;
    run(claim, barrier);
    if (isSplit) {
      check(MPI_Comm_split(claim.handle(), color < 0 ? MPI_UNDEFINED : color, key, &out), where);
    } else {
      check(MPI_Comm_dup(claim.handle(), &out), where);
    }
  }
  if (out == MPI_COMM_NULL) return -1;
  check(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), where);
  return registerComm(out);
}

// MPI_Comm_free only marks the communicator for deallocation and returns (no message is sent);
// every process of the communicator calls it, as for any collective.
void commFree(const std::string& where, int id) {
  if (id == kWorld || id == kLocal) {
    throw Failure("MPI_ARG", where + ": communicator " + std::to_string(id) +
                                 " is WORLD or LOCAL, which finalize frees; only commSplit's and commDup's can be freed");
  }
  Comm* comm = lookup(where, id);
  if (comm->broken.load()) throw brokenFailure(where, id);
  if (comm->busy.exchange(true)) throw busyFailure(where, id);
  int rc = MPI_SUCCESS;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    rc = MPI_Comm_free(&comm->handle);
    if (rc == MPI_SUCCESS) {
      comm->handle = MPI_COMM_NULL;
      comm->freed.store(true);
    }
  }
  comm->busy.store(false);
  check(rc, where);
}

int commCount(const std::string& where) {
  std::lock_guard<std::mutex> lock(g_mutex);
  requireInitialized(where);
  int count = 0;
  for (Comm* comm : g_comms) {
    if (comm->id != kWorld && comm->id != kLocal && !comm->freed.load()) count++;
  }
  return count;
}

void abortJob(int errorCode) {
  worldInfo("mpi.abort");
  MPI_Abort(MPI_COMM_WORLD, errorCode);
}

void finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  requireInitialized("mpi.finalize");
  if (std::this_thread::get_id() != g_initThread) {
    throw Failure("MPI_ARG", "mpi.finalize: call it on the thread that called init()");
  }
  if (g_abandoned.load()) {
    throw Failure("MPI_BROKEN",
                  "mpi.finalize: an earlier call timed out or failed and MPI would wait for it forever; "
                  "call abort() instead");
  }
  for (Comm* comm : g_comms) {
    if (comm->busy.load()) {
      throw Failure("MPI_BUSY", "mpi.finalize: communicator " + std::to_string(comm->id) + " is still in use");
    }
  }
  for (Comm* comm : g_comms) {
    if (comm->id != kWorld && comm->handle != MPI_COMM_NULL) MPI_Comm_free(&comm->handle);
    comm->handle = MPI_COMM_NULL;
  }
  check(MPI_Finalize(), "mpi.finalize");
  g_finalized = true;
}

std::string libraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "unknown";
  return std::string(text, length);
}

}  // namespace tgmpi
