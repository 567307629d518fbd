// threadgrad MPI transport: a Node-API addon over MPI, loaded by the main thread and by worker threads.
//
// One MPI library serves the whole process, so its state here is process-global and guarded by
// g_mutex: the main thread initialises MPI (MPI_THREAD_MULTIPLE) and creates communicators; any
// thread may then run collectives on them by integer id. Collectives are non-blocking MPI calls
// polled with MPI_Test until they finish or a time-out passes, so a missing peer becomes an error
// instead of a hang. MPI_ERRORS_RETURN turns MPI failures into JavaScript errors that carry MPI's
// own error string.
#include <mpi.h>
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// A failure with a stable code (becomes error.code in JavaScript).
struct Failure : std::runtime_error {
  std::string code;
  Failure(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

struct Comm {
  MPI_Comm handle = MPI_COMM_NULL;
  // MPI allows one collective at a time per communicator and process; a second thread that
  // tries gets an error instead of undefined behaviour.
  std::atomic<bool> busy{false};
  // Set when a request was abandoned (time-out or error): MPI may still use its buffer, and the
  // peers' views of the communicator have diverged, so nothing may run on it again.
  std::atomic<bool> broken{false};
  int id = 0;
};

std::mutex g_mutex;
bool g_initialized = false;
bool g_finalized = false;
std::thread::id g_initThread;
int g_rank = 0, g_size = 1, g_localRank = 0, g_localSize = 1;
// Index = communicator id; entries are never deleted, so a Comm* stays valid once looked up.
std::vector<Comm*> g_comms;
// Set once any request was abandoned: finalize would wait for it forever.
std::atomic<bool> g_abandoned{false};

const int kWorld = 0;
const int kLocal = 1;

std::string mpiErrorString(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return "MPI error code " + std::to_string(rc);
  return std::string(text, length);
}

void check(int rc, const std::string& where) {
  if (rc != MPI_SUCCESS) throw Failure("MPI_ERROR", where + ": MPI error: " + mpiErrorString(rc));
}

void requireInitialized(const std::string& where) {
  if (!g_initialized) {
    throw Failure("MPI_NOT_INITIALIZED", where + ": MPI is not initialised: call init() on the main thread first");
  }
  if (g_finalized) throw Failure("MPI_FINALIZED", where + ": MPI was finalised");
}

Comm* lookup(const std::string& where, int id) {
  std::lock_guard<std::mutex> lock(g_mutex);
  requireInitialized(where);
  if (id < 0 || static_cast<size_t>(id) >= g_comms.size() || g_comms[id]->handle == MPI_COMM_NULL) {
    throw Failure("MPI_BAD_COMM", where + ": unknown communicator " + std::to_string(id));
  }
  return g_comms[id];
}

int registerComm(MPI_Comm handle) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Comm* comm = new Comm();
  comm->handle = handle;
  comm->id = static_cast<int>(g_comms.size());
  g_comms.push_back(comm);
  return comm->id;
}

// Holds a communicator for one collective; released on success or on an error MPI reported before
// any request was started. An abandoned request leaves it claimed and marks it broken.
class Claim {
 public:
  Claim(const std::string& where, int id) : comm_(lookup(where, id)), where_(where) {
    if (comm_->broken.load()) {
      throw Failure("MPI_BROKEN", where + ": communicator " + std::to_string(id) +
                                      " is unusable: an earlier call on it timed out or failed");
    }
    if (comm_->busy.exchange(true)) {
      throw Failure("MPI_BUSY", where + ": communicator " + std::to_string(id) +
                                    " is in use by another call; give each thread its own (commDup)");
    }
  }
  ~Claim() {
    if (!abandoned_) comm_->busy.store(false);
  }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;
  MPI_Comm handle() const { return comm_->handle; }
  int id() const { return comm_->id; }
  bool isAbandoned() const { return abandoned_; }
  void abandon() {
    abandoned_ = true;
    comm_->broken.store(true);
    g_abandoned.store(true);
  }

 private:
  Comm* comm_;
  std::string where_;
  bool abandoned_ = false;
};

// Polls a started request until it completes or timeoutMs passes. MPI_Test is also what moves a
// non-blocking collective forward (Open MPI has no progress thread for it), so the loop spins for
// a while before it starts sleeping, and never sleeps long.
void waitFor(Claim& claim, MPI_Request* request, double timeoutMs, const std::string& where) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto spinUntil = start + std::chrono::milliseconds(5);
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double, std::milli>(timeoutMs));
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
      throw Failure("MPI_TIMEOUT", where + ": time-out after " + std::to_string(static_cast<long long>(timeoutMs)) +
                                       " ms on communicator " + std::to_string(claim.id()) +
                                       ": a process did not join (stopped, crashed or on another call)");
    }
    if (now < spinUntil) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(200));
    }
  }
}

// ---- One collective, described so that it can run in the calling thread or in the thread pool.

enum class Kind { AllReduce, Broadcast, Barrier };

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

// ---- Argument parsing.

int intArg(const Napi::CallbackInfo& info, size_t i, const std::string& where, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Failure("MPI_ARG", where + ": " + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= INT32_MIN && v <= INT32_MAX) || v != static_cast<double>(static_cast<int>(v))) {
    throw Failure("MPI_ARG", where + ": " + name + " must be an integer, got " + std::to_string(v));
  }
  return static_cast<int>(v);
}

double timeoutArg(const Napi::CallbackInfo& info, size_t i, const std::string& where) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Failure("MPI_ARG", where + ": timeoutMs must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v > 0 && v <= 86400000.0)) {
    throw Failure("MPI_ARG", where + ": timeoutMs must be in (0, 86400000], got " + std::to_string(v));
  }
  return v;
}

struct View {
  napi_typedarray_type type;
  void* data;
  size_t length;
  size_t byteLength;
};

View viewArg(const Napi::CallbackInfo& info, size_t i, const std::string& where) {
  if (info.Length() <= i || !info[i].IsTypedArray()) throw Failure("MPI_ARG", where + ": data must be a typed array");
  View v{};
  napi_value arraybuffer;
  size_t offset = 0;
  napi_status status =
      napi_get_typedarray_info(info.Env(), info[i], &v.type, &v.length, &v.data, &arraybuffer, &offset);
  if (status != napi_ok) throw Failure("MPI_ARG", where + ": cannot read the typed array");
  v.byteLength = info[i].As<Napi::TypedArray>().ByteLength();
  if (v.byteLength > static_cast<size_t>(INT32_MAX)) {
    throw Failure("MPI_ARG", where + ": data is " + std::to_string(v.byteLength) + " bytes; at most 2147483647");
  }
  return v;
}

MPI_Op opArg(const Napi::CallbackInfo& info, size_t i, const std::string& where) {
  std::string op = info.Length() > i && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (op == "sum") return MPI_SUM;
  if (op == "max") return MPI_MAX;
  if (op == "min") return MPI_MIN;
  throw Failure("MPI_ARG", where + ": op must be 'sum', 'max' or 'min', got '" + op + "'");
}

// Parses the arguments of allReduce(comm, data, op, timeoutMs), broadcast(comm, data, root,
// timeoutMs) and barrier(comm, timeoutMs).
Collective parse(const Napi::CallbackInfo& info, Kind kind, const std::string& where) {
  Collective c;
  c.where = where;
  c.kind = kind;
  if (kind == Kind::AllReduce) {
    View v = viewArg(info, 1, where);
    switch (v.type) {
      case napi_float32_array: c.type = MPI_FLOAT; break;
      case napi_float64_array: c.type = MPI_DOUBLE; break;
      case napi_int32_array: c.type = MPI_INT; break;
      default: throw Failure("MPI_ARG", where + ": data must be a Float32Array, Float64Array or Int32Array");
    }
    c.data = v.data;
    c.count = static_cast<int>(v.length);
    c.op = opArg(info, 2, where);
    c.timeoutMs = timeoutArg(info, 3, where);
  } else if (kind == Kind::Broadcast) {
    View v = viewArg(info, 1, where);
    c.data = v.data;
    c.count = static_cast<int>(v.byteLength);
    c.root = intArg(info, 2, where, "root");
    c.timeoutMs = timeoutArg(info, 3, where);
  } else {
    c.timeoutMs = timeoutArg(info, 1, where);
  }
  return c;
}

[[noreturn]] void rethrow(Napi::Env env, const Failure& f) {
  Napi::Error error = Napi::Error::New(env, f.what());
  error.Set("code", Napi::String::New(env, f.code));
  throw error;
}

// ---- Synchronous collectives: block the calling (worker) thread until done or timed out.

Napi::Value Collect(const Napi::CallbackInfo& info, Kind kind, const char* name) {
  try {
    Collective c = parse(info, kind, name);
    Claim claim(name, intArg(info, 0, name, "comm"));
    try {
      run(claim, c);
    } catch (const Failure&) {
      // An abandoned request may still write into the buffer: keep it alive for good.
      if (claim.isAbandoned() && kind != Kind::Barrier) {
        Napi::Persistent(info[1].As<Napi::Object>()).SuppressDestruct();
      }
      throw;
    }
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value AllReduce(const Napi::CallbackInfo& info) { return Collect(info, Kind::AllReduce, "mpi.allReduce"); }
Napi::Value Broadcast(const Napi::CallbackInfo& info) { return Collect(info, Kind::Broadcast, "mpi.broadcast"); }
Napi::Value Barrier(const Napi::CallbackInfo& info) { return Collect(info, Kind::Barrier, "mpi.barrier"); }

// ---- Asynchronous collectives for the main thread: the same polling loop in libuv's thread pool.

class CollectiveWorker : public Napi::AsyncWorker {
 public:
  CollectiveWorker(Napi::Env env, Collective c, std::unique_ptr<Claim> claim, Napi::Value data)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), c_(std::move(c)),
        claim_(std::move(claim)) {
    if (data.IsObject()) data_ = Napi::Persistent(data.As<Napi::Object>());
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      run(*claim_, c_);
    } catch (const Failure& f) {
      code_ = f.code;
      SetError(f.what());
    }
  }
  void OnOK() override {
    claim_.reset();
    deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override {
    Napi::Error error = Napi::Error::New(Env(), e.Message());
    error.Set("code", Napi::String::New(Env(), code_));
    if (claim_->isAbandoned() && !data_.IsEmpty()) data_.SuppressDestruct();
    claim_.reset();
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Collective c_;
  std::unique_ptr<Claim> claim_;
  Napi::ObjectReference data_;
  std::string code_;
};

Napi::Value CollectAsync(const Napi::CallbackInfo& info, Kind kind, const char* name) {
  try {
    Collective c = parse(info, kind, name);
    // Claimed now, in the caller's thread, so that a second call on the same communicator fails
    // at once rather than racing in the pool.
    auto claim = std::make_unique<Claim>(name, intArg(info, 0, name, "comm"));
    auto* worker = new CollectiveWorker(info.Env(), std::move(c), std::move(claim),
                                        kind == Kind::Barrier ? info.Env().Undefined() : info[1]);
    Napi::Promise promise = worker->Promise();
    worker->Queue();
    return promise;
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value AllReduceAsync(const Napi::CallbackInfo& info) {
  return CollectAsync(info, Kind::AllReduce, "mpi.allReduceAsync");
}
Napi::Value BroadcastAsync(const Napi::CallbackInfo& info) {
  return CollectAsync(info, Kind::Broadcast, "mpi.broadcastAsync");
}
Napi::Value BarrierAsync(const Napi::CallbackInfo& info) {
  return CollectAsync(info, Kind::Barrier, "mpi.barrierAsync");
}

// ---- Set-up, communicators, shut-down.

Napi::Object worldInfo(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", g_rank);
  out.Set("size", g_size);
  out.Set("localRank", g_localRank);
  out.Set("localSize", g_localSize);
  return out;
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
  check(MPI_Comm_rank(MPI_COMM_WORLD, &g_rank), "mpi.init");
  check(MPI_Comm_size(MPI_COMM_WORLD, &g_size), "mpi.init");
  MPI_Comm local = MPI_COMM_NULL;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local), "mpi.init");
  check(MPI_Comm_set_errhandler(local, MPI_ERRORS_RETURN), "mpi.init");
  check(MPI_Comm_rank(local, &g_localRank), "mpi.init");
  check(MPI_Comm_size(local, &g_localSize), "mpi.init");
  Comm* world = new Comm();
  world->handle = MPI_COMM_WORLD;
  world->id = kWorld;
  Comm* host = new Comm();
  host->handle = local;
  host->id = kLocal;
  g_comms = {world, host};
}

// init() -> { rank, size, localRank, localSize }. Initialises MPI on the first call; later calls
// (from any thread) return the same numbers.
Napi::Value Init(const Napi::CallbackInfo& info) {
  try {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (g_finalized) throw Failure("MPI_FINALIZED", "mpi.init: MPI was finalised and cannot start again");
    if (!g_initialized) initOnce();
    return worldInfo(info.Env());
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  try {
    std::lock_guard<std::mutex> lock(g_mutex);
    requireInitialized("mpi.info");
    return worldInfo(info.Env());
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value CommInfo(const Napi::CallbackInfo& info) {
  try {
    Comm* comm = lookup("mpi.commInfo", intArg(info, 0, "mpi.commInfo", "comm"));
    int rank = 0, size = 0;
    check(MPI_Comm_rank(comm->handle, &rank), "mpi.commInfo");
    check(MPI_Comm_size(comm->handle, &size), "mpi.commInfo");
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("rank", rank);
    out.Set("size", size);
    return out;
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

// commSplit(parent, color, key, timeoutMs) -> id, or -1 when color < 0 (MPI_UNDEFINED).
// commDup(parent, timeoutMs) -> id. MPI has no non-blocking split, so a barrier with a time-out
// runs first: once every process has reached it, the blocking call cannot wait for a missing one.
Napi::Value CommCreate(const Napi::CallbackInfo& info, bool isSplit) {
  const std::string where = isSplit ? "mpi.commSplit" : "mpi.commDup";
  try {
    int parentId = intArg(info, 0, where, "comm");
    int color = isSplit ? intArg(info, 1, where, "color") : 0;
    int key = isSplit ? intArg(info, 2, where, "key") : 0;
    double timeoutMs = timeoutArg(info, isSplit ? 3 : 1, where);
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
    if (out == MPI_COMM_NULL) return Napi::Number::New(info.Env(), -1);
    check(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), where);
    return Napi::Number::New(info.Env(), registerComm(out));
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value CommSplit(const Napi::CallbackInfo& info) { return CommCreate(info, true); }
Napi::Value CommDup(const Napi::CallbackInfo& info) { return CommCreate(info, false); }

// Stops every process of the job (MPI_Abort on the world communicator).
Napi::Value Abort(const Napi::CallbackInfo& info) {
  try {
    int code = intArg(info, 0, "mpi.abort", "errorCode");
    requireInitialized("mpi.abort");
    MPI_Abort(MPI_COMM_WORLD, code);
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  try {
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
      if (comm->busy.load()) throw Failure("MPI_BUSY", "mpi.finalize: communicator " + std::to_string(comm->id) +
                                                           " is still in use");
    }
    for (Comm* comm : g_comms) {
      if (comm->id != kWorld && comm->handle != MPI_COMM_NULL) MPI_Comm_free(&comm->handle);
      comm->handle = MPI_COMM_NULL;
    }
    check(MPI_Finalize(), "mpi.finalize");
    g_finalized = true;
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(text, &length);
  return Napi::String::New(info.Env(), std::string(text, length));
}

Napi::Object Setup(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("commInfo", Napi::Function::New(env, CommInfo));
  exports.Set("commSplit", Napi::Function::New(env, CommSplit));
  exports.Set("commDup", Napi::Function::New(env, CommDup));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("allReduceAsync", Napi::Function::New(env, AllReduceAsync));
  exports.Set("broadcastAsync", Napi::Function::New(env, BroadcastAsync));
  exports.Set("barrierAsync", Napi::Function::New(env, BarrierAsync));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("libraryVersion", Napi::Function::New(env, Version));
  exports.Set("WORLD", Napi::Number::New(env, kWorld));
  exports.Set("LOCAL", Napi::Number::New(env, kLocal));
  return exports;
}

}  // namespace

// Context-aware registration: every thread's environment (main and workers) gets its own exports
// object over the one process-global state above.
NAPI_MODULE_INIT() {
  Napi::Env e(env);
  Napi::Object ex(env, exports);
  try {
    return Setup(e, ex);
  } catch (const Napi::Error& error) {
    error.ThrowAsJavaScriptException();
    return nullptr;
  }
}
