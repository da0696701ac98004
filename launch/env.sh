# Sourced by the launch scripts: environment for running shardtrain on these machines.
# Open MPI refuses to run as root unless told; our machines and CI run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenBLAS picks its GEMM kernels from the CPU model; on virtual machines that hide it, it
# falls back to SSE3 ("Prescott" in shardtrain's start-up line) and GEMMs run at a fraction
# of the speed. When the CPU has AVX2 and FMA, ask for those kernels (a user's own
# OPENBLAS_CORETYPE wins).
if [[ -z ${OPENBLAS_CORETYPE:-} ]] && grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Haswell
fi
