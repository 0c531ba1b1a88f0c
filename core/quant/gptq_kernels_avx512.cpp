// GPTQ's linear algebra for avx512 (see gptq_kernels.h; the compile flags are set in core/CMakeLists.txt).
#define Eigen qs_eigen_avx512
#define QS_GPTQ_ISA_NAME "avx512"
#define QS_GPTQ_ACCESSOR kernelsAvx512
#include "core/quant/gptq_kernels.inc"
