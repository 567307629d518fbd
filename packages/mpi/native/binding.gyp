# Built by ../scripts/build.mjs, never by an install hook: this file sits outside the package root
# so that package managers do not run `node-gyp rebuild` on their own (offline, without MPI).
# The script passes the MPI compiler and linker flags in THREADGRAD_MPI_CFLAGS / _LIBS.
{
  "targets": [
    {
      "target_name": "threadgrad_mpi",
      "sources": ["mpi_addon.cc", "transport.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "OMPI_SKIP_MPICXX", "MPICH_SKIP_MPICXX"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "<!@(node -p \"process.env.THREADGRAD_MPI_CFLAGS || ''\")"],
      "libraries": ["<!@(node -p \"process.env.THREADGRAD_MPI_LIBS || ''\")"]
    }
  ]
}
