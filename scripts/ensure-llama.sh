#!/usr/bin/env bash
# Build llama-cpp-python 0.3.36 (llama.cpp from source, CPU) once, keep the wheel in a cache,
# and install it into the active environment. Optionally build llama-server from the same source.
#   scripts/ensure-llama.sh            install the python binding
#   scripts/ensure-llama.sh --server   also build bin/llama-server (cached)
set -euo pipefail
VERSION=0.3.36
CACHE="${SERVEFIT_CACHE:-$HOME/.cache/servefit}"
WHEELS="$CACHE/wheels"
mkdir -p "$WHEELS"
PY="${PYTHON:-python}"

if ! "$PY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  if ! ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $VERSION (llama.cpp from source, CPU; about 10 minutes on 2 cores, once)" >&2
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAVA_BUILD=OFF" \
      "$PY" -m pip wheel --no-deps "llama-cpp-python==$VERSION" -w "$WHEELS"
  fi
  # the wheel in $WHEELS is preferred over the sdist of the same version; its dependencies come from the index
  "$PY" -m pip install --find-links "$WHEELS" "llama-cpp-python==$VERSION"
fi

if [ "${1:-}" = "--server" ]; then
  SRC="$CACHE/src/llama_cpp_python-$VERSION"
  BIN="$CACHE/bin"
  if [ ! -x "$BIN/llama-server" ]; then
    if [ ! -d "$SRC/vendor/llama.cpp" ]; then
      mkdir -p "$CACHE/sdist" "$CACHE/src"
      "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$CACHE/sdist"
      tar xzf "$CACHE/sdist/llama_cpp_python-$VERSION.tar.gz" -C "$CACHE/src"
    fi
    echo "building llama-server from llama.cpp in llama-cpp-python $VERSION (CPU, once)" >&2
    cmake -S "$SRC/vendor/llama.cpp" -B "$CACHE/build-server" -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_WEBUI=OFF -DBUILD_SHARED_LIBS=OFF >&2
    cmake --build "$CACHE/build-server" --target llama-server llama-quantize -j "$(nproc)" >&2
    mkdir -p "$BIN"
    cp "$CACHE/build-server/bin/llama-server" "$CACHE/build-server/bin/llama-quantize" "$BIN/"
  fi
  echo "$BIN/llama-server"
fi
