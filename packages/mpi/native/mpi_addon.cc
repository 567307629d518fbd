// threadgrad MPI transport: the Node-API side. Loaded by the main thread and by worker threads;
// each gets its own exports over the one process-global MPI state in transport.cc. Collectives
// run in the calling thread (blocking it until done or timed out) or, for the main thread, in
// libuv's thread pool behind a promise.
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>

#include "transport.h"

namespace {

using tgmpi::Claim;
using tgmpi::Collective;
using tgmpi::Failure;
using tgmpi::Kind;

// ---- Argument parsing.

int intArg(const Napi::CallbackInfo& info, size_t i, const std::string& where, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Failure("MPI_ARG", where + ": " + name + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= INT32_MIN && v <= INT32_MAX) || v != static_cast<double>(static_cast<int>(v))) {
    throw Failure("MPI_ARG", where + ": " + name + " must be an integer, got " + tgmpi::formatNumber(v));
  }
  return static_cast<int>(v);
}

double timeoutArg(const Napi::CallbackInfo& info, size_t i, const std::string& where) {
  if (info.Length() <= i || !info[i].IsNumber()) throw Failure("MPI_ARG", where + ": timeoutMs must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v > 0 && v <= 86400000.0)) {
    throw Failure("MPI_ARG", where + ": timeoutMs must be in (0, 86400000], got " + tgmpi::formatNumber(v));
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

Napi::Object toObject(Napi::Env env, const tgmpi::WorldInfo& w) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", w.rank);
  out.Set("size", w.size);
  out.Set("localRank", w.localRank);
  out.Set("localSize", w.localSize);
  return out;
}

// init() -> { rank, size, localRank, localSize }; initialises MPI on the first call.
Napi::Value Init(const Napi::CallbackInfo& info) {
  try {
    return toObject(info.Env(), tgmpi::initialize());
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  try {
    return toObject(info.Env(), tgmpi::worldInfo("mpi.info"));
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value CommInfo(const Napi::CallbackInfo& info) {
  try {
    int rank = 0, size = 0;
    tgmpi::commRankSize("mpi.commInfo", intArg(info, 0, "mpi.commInfo", "comm"), &rank, &size);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("rank", rank);
    out.Set("size", size);
    return out;
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

// commSplit(parent, color, key, timeoutMs) -> id, or -1 when color < 0 (MPI_UNDEFINED).
// commDup(parent, timeoutMs) -> id.
Napi::Value CommCreate(const Napi::CallbackInfo& info, bool isSplit) {
  const std::string where = isSplit ? "mpi.commSplit" : "mpi.commDup";
  try {
    int parentId = intArg(info, 0, where, "comm");
    int color = isSplit ? intArg(info, 1, where, "color") : 0;
    int key = isSplit ? intArg(info, 2, where, "key") : 0;
    double timeoutMs = timeoutArg(info, isSplit ? 3 : 1, where);
    return Napi::Number::New(info.Env(), tgmpi::commCreate(where, parentId, isSplit, color, key, timeoutMs));
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value CommSplit(const Napi::CallbackInfo& info) { return CommCreate(info, true); }
Napi::Value CommDup(const Napi::CallbackInfo& info) { return CommCreate(info, false); }

// commFree(comm): MPI_Comm_free on a communicator commSplit or commDup made.
Napi::Value CommFree(const Napi::CallbackInfo& info) {
  try {
    tgmpi::commFree("mpi.commFree", intArg(info, 0, "mpi.commFree", "comm"));
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

// commCount() -> how many communicators commSplit and commDup made that are not freed yet.
Napi::Value CommCount(const Napi::CallbackInfo& info) {
  try {
    return Napi::Number::New(info.Env(), tgmpi::commCount("mpi.commCount"));
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

// Stops every process of the job (MPI_Abort on the world communicator).
Napi::Value Abort(const Napi::CallbackInfo& info) {
  try {
    tgmpi::abortJob(intArg(info, 0, "mpi.abort", "errorCode"));
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Finalize(const Napi::CallbackInfo& info) {
  try {
    tgmpi::finalize();
    return info.Env().Undefined();
  } catch (const Failure& f) {
    rethrow(info.Env(), f);
  }
}

Napi::Value Version(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), tgmpi::libraryVersion()); }

Napi::Object Setup(Napi::Env env, Napi::Object exports) {
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("commInfo", Napi::Function::New(env, CommInfo));
  exports.Set("commSplit", Napi::Function::New(env, CommSplit));
  exports.Set("commDup", Napi::Function::New(env, CommDup));
  exports.Set("commFree", Napi::Function::New(env, CommFree));
  exports.Set("commCount", Napi::Function::New(env, CommCount));
  exports.Set("allReduce", Napi::Function::New(env, AllReduce));
  exports.Set("broadcast", Napi::Function::New(env, Broadcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("allReduceAsync", Napi::Function::New(env, AllReduceAsync));
  exports.Set("broadcastAsync", Napi::Function::New(env, BroadcastAsync));
  exports.Set("barrierAsync", Napi::Function::New(env, BarrierAsync));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("libraryVersion", Napi::Function::New(env, Version));
  exports.Set("WORLD", Napi::Number::New(env, tgmpi::kWorld));
  exports.Set("LOCAL", Napi::Number::New(env, tgmpi::kLocal));
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
