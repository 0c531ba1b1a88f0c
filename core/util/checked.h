#pragma once
// Overflow-checked arithmetic for sizes read from untrusted files.

#include <cstdint>
#include <optional>

namespace qs {

inline std::optional<uint64_t> checkedAdd(uint64_t a, uint64_t b)
{
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return std::nullopt;
    return r;
}

inline std::optional<uint64_t> checkedMul(uint64_t a, uint64_t b)
{
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return std::nullopt;
    return r;
}

} // namespace qs
