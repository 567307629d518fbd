// threadgrad's optional native matmul: float32 products on the host's BLAS (OpenBLAS by default),
// opened at run time with dlopen, so this addon links against nothing and builds with only a C
// compiler and Node's headers (scripts/build-native.mjs). Without it, or without a BLAS, core's
// WebAssembly matmul serves every product.
//
// Contract (the same as the WebAssembly matmul's): C = op(A)·op(B) in float32, row-major, C
// overwritten, subnormal inputs read as zero and subnormal results flushed to zero (MXCSR's DAZ and
// FTZ, set around the call and restored). Every bound is checked here before the BLAS is called:
// a bad call throws a RangeError and writes nothing.
//
// Threads: threadgrad runs one BLAS call per worker thread at a time and gets its parallelism from
// the workers, so the BLAS must stay single-threaded. Before the library is opened, OMP_NUM_THREADS
// and OPENBLAS_NUM_THREADS are set to 1 (their previous values are restored right after, so child
// processes see the user's environment); each thread also sets its own OpenMP thread count to 1.
// On an AVX-512 machine with OPENBLAS_CORETYPE unset, it is set to SkylakeX while the library opens:
// OpenBLAS 0.3.21 does not recognise AMD's AVX-512 cores and would pick its AVX2 kernels.
#define NAPI_VERSION 8
#include <dlfcn.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TG_X86 1
#endif

typedef void (*sgemm_fn)(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc);
typedef void (*set_threads_fn)(int);
typedef char* (*string_fn)(void);

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static void* library = NULL;
static char library_path[1024];
static sgemm_fn sgemm = NULL;
static set_threads_fn omp_set_threads = NULL;
static __thread int thread_ready = 0;

// Saves NAME's value (or its absence) and sets it to VALUE.
typedef struct {
  const char* name;
  char* saved;
  int had;
} env_save;

static void env_push(env_save* s, const char* name, const char* value) {
  const char* old = getenv(name);
  s->name = name;
  s->had = old != NULL;
  s->saved = old != NULL ? strdup(old) : NULL;
  setenv(name, value, 1);
}

static void env_pop(env_save* s) {
  if (s->had) {
    setenv(s->name, s->saved, 1);
    free(s->saved);
  } else {
    unsetenv(s->name);
  }
}

static int has_avx512(void) {
#if defined(TG_X86) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512cd");
#else
  return 0;
#endif
}

static napi_value throw_error(napi_env env, const char* message) {
  napi_throw_error(env, "ERR_THREADGRAD_BLAS", message);
  return NULL;
}

static napi_value throw_range(napi_env env, const char* message) {
  napi_throw_range_error(env, "ERR_THREADGRAD_BLAS", message);
  return NULL;
}

static napi_value make_string(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s != NULL ? s : "", NAPI_AUTO_LENGTH, &v);
  return v;
}

// load(path): opens the BLAS at `path` (a file name dlopen searches for, or a path) once per
// process and returns { library, config, core }; a second call with another path throws.
static napi_value load(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[1024];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok) {
    return throw_error(env, "load: expected the BLAS library's file name or path");
  }
  if (len >= sizeof path - 1) return throw_error(env, "load: the library path is too long");
  char message[2200];
  pthread_mutex_lock(&load_lock);
  if (library == NULL) {
    env_save omp, ob, core;
    env_push(&omp, "OMP_NUM_THREADS", "1");
    env_push(&ob, "OPENBLAS_NUM_THREADS", "1");
    int set_core = getenv("OPENBLAS_CORETYPE") == NULL && has_avx512();
    if (set_core) env_push(&core, "OPENBLAS_CORETYPE", "SkylakeX");
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (set_core) env_pop(&core);
    env_pop(&ob);
    env_pop(&omp);
    if (handle == NULL) {
      const char* why = dlerror();
      snprintf(message, sizeof message, "cannot open the BLAS library '%s': %s", path, why != NULL ? why : "?");
      pthread_mutex_unlock(&load_lock);
      return throw_error(env, message);
    }
    sgemm_fn fn = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    if (fn == NULL) {
      dlclose(handle);
      snprintf(message, sizeof message, "the library '%s' has no cblas_sgemm: not a CBLAS", path);
      pthread_mutex_unlock(&load_lock);
      return throw_error(env, message);
    }
    set_threads_fn ob_threads = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    if (ob_threads != NULL) ob_threads(1);
    omp_set_threads = (set_threads_fn)dlsym(handle, "omp_set_num_threads");
    library = handle;
    sgemm = fn;
    snprintf(library_path, sizeof library_path, "%s", path);
  } else if (strcmp(path, library_path) != 0) {
    snprintf(message, sizeof message, "load: '%s' is already loaded in this process; cannot also load '%s'",
             library_path, path);
    pthread_mutex_unlock(&load_lock);
    return throw_error(env, message);
  }
  pthread_mutex_unlock(&load_lock);
  string_fn config = (string_fn)dlsym(library, "openblas_get_config");
  string_fn corename = (string_fn)dlsym(library, "openblas_get_corename");
  napi_value out;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "library", make_string(env, library_path));
  napi_set_named_property(env, out, "config", make_string(env, config != NULL ? config() : ""));
  napi_set_named_property(env, out, "core", make_string(env, corename != NULL ? corename() : ""));
  return out;
}

typedef struct {
  float* data;
  size_t length;
} f32_view;

static int get_f32(napi_env env, napi_value v, f32_view* out) {
  napi_typedarray_type type;
  void* data;
  napi_value buffer;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, &out->length, &data, &buffer, &offset) != napi_ok) return 0;
  if (type != napi_float32_array) return 0;
  out->data = (float*)data;
  return 1;
}

// An integer argument in [0, 2^31 - 1].
static int get_count(napi_env env, napi_value v, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 2147483647.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

// Checks that a rows×cols matrix with leading dimension ld starting at off fits in view.
static int fits(const f32_view* view, int64_t off, int64_t rows, int64_t cols, int64_t ld) {
  if (ld < (cols > 1 ? cols : 1)) return 0;
  if (rows == 0 || cols == 0) return off <= (int64_t)view->length;
  return off + (rows - 1) * ld + cols <= (int64_t)view->length;
}

static int overlaps(const float* p, int64_t p_end, const float* q, int64_t q_end) {
  const char* a0 = (const char*)p;
  const char* b0 = (const char*)q;
  return a0 < b0 + q_end * 4 && b0 < a0 + p_end * 4;
}

// sgemm(transA, transB, m, n, k, a, aOff, lda, b, bOff, ldb, c, cOff, ldc): c = op(a)·op(b), where
// a, b, c are Float32Arrays and offsets and leading dimensions count floats; op(a) is m×k (a stored
// k×m when transA), op(b) k×n (stored n×k when transB), c m×n with rows ldc floats apart.
static napi_value gemm(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (sgemm == NULL) return throw_error(env, "sgemm: no BLAS is loaded (call load first)");
  if (argc != 14) return throw_error(env, "sgemm: expected 14 arguments");
  bool trans_a, trans_b;
  if (napi_get_value_bool(env, argv[0], &trans_a) != napi_ok || napi_get_value_bool(env, argv[1], &trans_b) != napi_ok) {
    return throw_error(env, "sgemm: transA and transB must be booleans");
  }
  static const char* names[] = {"m", "n", "k", "aOff", "lda", "bOff", "ldb", "cOff", "ldc"};
  static const int positions[] = {2, 3, 4, 6, 7, 9, 10, 12, 13};
  int64_t v[9];
  char message[256];
  for (int i = 0; i < 9; i++) {
    if (!get_count(env, argv[positions[i]], &v[i])) {
      snprintf(message, sizeof message, "sgemm: %s must be an integer in [0, 2^31 - 1]", names[i]);
      return throw_range(env, message);
    }
  }
  int64_t m = v[0], n = v[1], k = v[2], a_off = v[3], lda = v[4], b_off = v[5], ldb = v[6], c_off = v[7], ldc = v[8];
  f32_view a, b, c;
  if (!get_f32(env, argv[5], &a)) return throw_error(env, "sgemm: a must be a Float32Array");
  if (!get_f32(env, argv[8], &b)) return throw_error(env, "sgemm: b must be a Float32Array");
  if (!get_f32(env, argv[11], &c)) return throw_error(env, "sgemm: c must be a Float32Array");
  int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  if (!fits(&a, a_off, a_rows, a_cols, lda)) {
    snprintf(message, sizeof message, "sgemm: a (%zu floats) cannot hold %lldx%lld from offset %lld with lda %lld",
             a.length, (long long)a_rows, (long long)a_cols, (long long)a_off, (long long)lda);
    return throw_range(env, message);
  }
  if (!fits(&b, b_off, b_rows, b_cols, ldb)) {
    snprintf(message, sizeof message, "sgemm: b (%zu floats) cannot hold %lldx%lld from offset %lld with ldb %lld",
             b.length, (long long)b_rows, (long long)b_cols, (long long)b_off, (long long)ldb);
    return throw_range(env, message);
  }
  if (!fits(&c, c_off, m, n, ldc)) {
    snprintf(message, sizeof message, "sgemm: c (%zu floats) cannot hold %lldx%lld from offset %lld with ldc %lld",
             c.length, (long long)m, (long long)n, (long long)c_off, (long long)ldc);
    return throw_range(env, message);
  }
  if (m == 0 || n == 0) return NULL;
  float* cp = c.data + c_off;
  const float* ap = a.data + a_off;
  const float* bp = b.data + b_off;
  int64_t c_span = (m - 1) * ldc + n;
  if (k > 0 && (overlaps(cp, c_span, ap, (a_rows - 1) * lda + a_cols) || overlaps(cp, c_span, bp, (b_rows - 1) * ldb + b_cols))) {
    return throw_range(env, "sgemm: c overlaps an input; the output must not alias a or b");
  }
  if (k == 0) {
    for (int64_t i = 0; i < m; i++) memset(cp + i * ldc, 0, (size_t)n * 4);
    return NULL;
  }
  if (!thread_ready) {
    if (omp_set_threads != NULL) omp_set_threads(1);
    thread_ready = 1;
  }
#ifdef TG_X86
  unsigned int csr = _mm_getcsr();
  _mm_setcsr(csr | 0x8040);  // FTZ (bit 15) and DAZ (bit 6)
#endif
  sgemm(ROW_MAJOR, trans_a ? TRANS : NO_TRANS, trans_b ? TRANS : NO_TRANS, (int)m, (int)n, (int)k, 1.0f, ap,
        (int)lda, bp, (int)ldb, 0.0f, cp, (int)ldc);
#ifdef TG_X86
  _mm_setcsr(csr);
#endif
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"load", NULL, load, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemm", NULL, gemm, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}
