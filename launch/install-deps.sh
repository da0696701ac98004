#!/usr/bin/env bash
# Installs everything shardtrain needs to build, train and test, from Debian's packages.
# Idempotent: packages already present are left alone. Must run as root (CI does).
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config
  openmpi-bin libopenmpi-dev           # MPI launcher + headers (CPU communicator)
  libhdf5-openmpi-dev hdf5-tools       # parallel HDF5 (data, checkpoints) + h5dump
  libprotobuf-dev protobuf-compiler    # job configs in Protobuf text format
  libopenblas-openmp-dev zlib1g-dev    # CPU GEMM (OpenMP build: one thread pool); gunzip of IDX
  libgtest-dev                         # unit tests (find_package(GTest))
  dataset-fashion-mnist                # the real training data, as gzipped IDX files
  fortunes                             # English text for the byte-level language model
  python3-h5py python3-torch python3-numpy  # reference tests only, under /usr/bin/python3
  slurm-wlm munge                      # a throwaway Slurm for the cluster/ tests (cluster/local/start.sh);
                                       # srun --mpi=pmix finds libpmix through libopenmpi-dev
  iproute2                             # ip netns: simulated hosts of the multi-host test
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
