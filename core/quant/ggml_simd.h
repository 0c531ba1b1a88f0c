#pragma once
// Four floats / ints in one SSE register (GCC / Clang vector extensions), for the batched ggml searches
// (internal to core/quant). Lane-wise arithmetic is the same IEEE single-precision arithmetic as the
// scalar code, so a lane reproduces the scalar results bit for bit.

#include <bit>
#include <cstdint>

namespace qs::ggml::detail {

using F4 = float __attribute__((vector_size(16)));
using I4 = int32_t __attribute__((vector_size(16)));

inline F4 splat(float v)
{
    return F4{v, v, v, v};
}
inline I4 splatInt(int v)
{
    return I4{v, v, v, v};
}
inline I4 bitsOf(F4 v)
{
    return std::bit_cast<I4>(v);
}
inline F4 floatsOf(I4 v)
{
    return std::bit_cast<F4>(v);
}
// mask lanes are all ones (true) or all zeros, as vector comparisons produce.
inline I4 select(I4 mask, I4 a, I4 b)
{
    return (mask & a) | (~mask & b);
}
inline F4 select(I4 mask, F4 a, F4 b)
{
    return floatsOf(select(mask, bitsOf(a), bitsOf(b)));
}
inline F4 absVec(F4 v)
{
    return floatsOf(bitsOf(v) & splatInt(0x7fffffff));
}
// nearestInt() lane-wise.
inline I4 nearestInt4(F4 v)
{
    return (bitsOf(v + splat(12582912.0f)) & splatInt(0x007fffff)) - splatInt(0x00400000);
}

} // namespace qs::ggml::detail
