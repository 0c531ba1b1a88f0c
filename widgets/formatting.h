#pragma once
// Human-readable numbers shared by every view, so sizes and counts read the same everywhere.

#include <QString>

#include <cstdint>
#include <vector>

namespace qs {

// 1536 -> "1.5 KiB"; binary units because users compare against GPU memory sizes in GiB.
QString formatBytes(uint64_t bytes);
// 260'000 -> "260K", 7'241'732'096 -> "7.24B": the way model cards quote parameter counts.
QString formatCount(uint64_t count);
// Exact count with thousands separators, for tooltips and the summary.
QString formatExact(uint64_t count);
// {512, 64} -> "512 × 64"; {} -> "scalar".
QString formatShape(const std::vector<uint64_t>& shape);
// "1 tensor", "48 tensors" (English plurals without a translator loaded).
QString countNoun(uint64_t count, const char* singular, const char* plural);
// A statistic for tables: 4 significant digits, scientific for very large or tiny magnitudes.
QString formatStat(double value);

// File-dialog filter for models, from the loader table (core/io/loader.h): all models, then each loader,
// then all files.
QString modelFileFilter();

} // namespace qs
