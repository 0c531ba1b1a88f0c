#include "core/stats/statscache.h"

#include "core/io/hdf5handle.h"
#include "core/model/model.h"
#include "core/model/modelidentity.h"

#include <QCryptographicHash>
#include <fstream>
#include <hdf5.h>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <unistd.h>

namespace qs {

namespace {

// Bump whenever the meaning or layout of cached values changes: old caches then no longer match.
// 2: channels-last layouts; 3: GPT-2 Conv1D and Keras depthwise kernels per output channel
constexpr const char* kCacheVersion = "quantscope-stats-cache 3";
constexpr uint64_t kMaxCacheBytes = 4ull << 30;
constexpr size_t kU64Fields = 9, kF64Fields = 9;

std::string sha256Hex(const QByteArray& bytes)
{
    return QCryptographicHash::hash(bytes, QCryptographicHash::Sha256).toHex().toStdString();
}

std::optional<QByteArray> readWhole(const std::filesystem::path& path, uint64_t maxBytes)
{
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > maxBytes)
        return std::nullopt;
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    QByteArray bytes(static_cast<qsizetype>(size), Qt::Uninitialized);
    in.read(bytes.data(), static_cast<std::streamsize>(size));
    if (static_cast<uint64_t>(in.gcount()) != size)
        return std::nullopt;
    return bytes;
}

template <typename T> hid_t nativeType();
template <> hid_t nativeType<uint8_t>()
{
    return H5T_NATIVE_UINT8;
}
template <> hid_t nativeType<uint16_t>()
{
    return H5T_NATIVE_UINT16;
}
template <> hid_t nativeType<uint64_t>()
{
    return H5T_NATIVE_UINT64;
}
template <> hid_t nativeType<float>()
{
    return H5T_NATIVE_FLOAT;
}
template <> hid_t nativeType<double>()
{
    return H5T_NATIVE_DOUBLE;
}

template <typename T>
bool writeArray(hid_t file, const char* name, const std::vector<T>& v, hsize_t columns = 1)
{
    const hsize_t dims[2] = {columns ? v.size() / columns : 0, columns};
    Hdf5Handle space(H5Screate_simple(2, dims, nullptr), H5Sclose);
    if (!space.valid())
        return false;
    Hdf5Handle set(
        H5Dcreate2(file, name, nativeType<T>(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
    if (!set.valid())
        return false;
    return v.empty() || H5Dwrite(set.get(), nativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) >= 0;
}

// Reads a rows x columns dataset; fails on any other shape or more than maxElements values.
template <typename T>
bool readArray(hid_t file, const char* name, std::vector<T>& out, hsize_t columns, uint64_t maxElements)
{
    Hdf5Handle set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
    if (!set.valid())
        return false;
    Hdf5Handle space(H5Dget_space(set.get()), H5Sclose);
    if (!space.valid() || H5Sget_simple_extent_ndims(space.get()) != 2)
        return false;
    hsize_t dims[2] = {0, 0};
    if (H5Sget_simple_extent_dims(space.get(), dims, nullptr) != 2 || dims[1] != columns)
        return false;
    if (dims[0] > maxElements / columns)
        return false;
    out.resize(static_cast<size_t>(dims[0] * columns));
    return out.empty() || H5Dread(set.get(), nativeType<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) >= 0;
}

bool validOffsets(const std::vector<uint64_t>& offsets, size_t entries, size_t total)
{
    if (offsets.size() != entries + 1 || offsets.front() != 0 || offsets.back() != total)
        return false;
    for (size_t i = 1; i < offsets.size(); ++i)
        if (offsets[i] < offsets[i - 1])
            return false;
    return true;
}

} // namespace

StatsCache::StatsCache(const Model& model, std::filesystem::path dir)
{
    const ModelIdentity id = modelIdentity(model);
    if (id.key.empty())
        return; // cannot key what cannot be stat'ed: no cache
    m_key = std::string(kCacheVersion) + '\n' + id.key;
    m_file = modelCacheFile(model, dir, ".h5");
}

std::filesystem::path StatsCache::defaultDirectory()
{
    return cacheDirectory();
}

size_t StatsCache::load()
{
    m_entries.clear();
    if (m_file.empty() || m_key.empty())
        return 0;
    // 1. The side file names the size and SHA-256 of the cache; only a file that matches is opened.
    auto sidecar = m_file;
    sidecar += ".sum";
    const auto sum = readWhole(sidecar, 4096);
    if (!sum)
        return 0;
    std::istringstream in(sum->toStdString());
    std::string version, sizeTag, hashTag, hash;
    uint64_t size = 0;
    std::getline(in, version);
    in >> sizeTag >> size >> hashTag >> hash;
    if (!in || version != kCacheVersion || sizeTag != "size" || hashTag != "sha256" || size > kMaxCacheBytes)
        return 0;
    const auto bytes = readWhole(m_file, kMaxCacheBytes);
    if (!bytes || static_cast<uint64_t>(bytes->size()) != size || sha256Hex(*bytes) != hash)
        return 0;

    // 2. Read every array, then check that they are consistent before building anything.
    std::lock_guard lock(hdf5Mutex());
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    Hdf5Handle file(H5Fopen(m_file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!file.valid())
        return 0;
    const uint64_t limit = size; // no array can hold more values than the file has bytes
    std::vector<uint8_t> key, names, dtypes;
    std::vector<uint64_t> nameOffsets, shapeOffsets, shapes, u64, histOffsets, histCounts, chanOffsets;
    std::vector<uint16_t> histKeys;
    std::vector<double> f64;
    std::vector<float> chanAbsmax, chanStd;
    const hid_t f = file.get();
    if (!readArray(f, "key", key, 1, limit) || std::string(key.begin(), key.end()) != m_key)
        return 0; // stale: the model files changed
    if (!readArray(f, "name_offsets", nameOffsets, 1, limit) || nameOffsets.empty() ||
        !readArray(f, "names", names, 1, limit) || !readArray(f, "dtypes", dtypes, 1, limit) ||
        !readArray(f, "shape_offsets", shapeOffsets, 1, limit) || !readArray(f, "shapes", shapes, 1, limit) ||
        !readArray(f, "u64", u64, kU64Fields, limit) || !readArray(f, "f64", f64, kF64Fields, limit) ||
        !readArray(f, "hist_offsets", histOffsets, 1, limit) ||
        !readArray(f, "hist_keys", histKeys, 1, limit) ||
        !readArray(f, "hist_counts", histCounts, 1, limit) ||
        !readArray(f, "chan_offsets", chanOffsets, 1, limit) ||
        !readArray(f, "chan_absmax", chanAbsmax, 1, limit) || !readArray(f, "chan_std", chanStd, 1, limit))
        return 0;
    const size_t n = nameOffsets.size() - 1;
    if (!validOffsets(nameOffsets, n, names.size()) || !validOffsets(shapeOffsets, n, shapes.size()) ||
        !validOffsets(histOffsets, n, histKeys.size()) || histCounts.size() != histKeys.size() ||
        !validOffsets(chanOffsets, n, chanAbsmax.size()) || chanStd.size() != chanAbsmax.size() ||
        dtypes.size() != n || u64.size() != n * kU64Fields || f64.size() != n * kF64Fields)
        return 0;

    std::map<std::string, TensorStats, std::less<>> entries;
    for (size_t i = 0; i < n; ++i) {
        TensorStats s;
        s.name.assign(names.begin() + static_cast<ptrdiff_t>(nameOffsets[i]),
                      names.begin() + static_cast<ptrdiff_t>(nameOffsets[i + 1]));
        if (dtypes[i] >= static_cast<uint8_t>(DType::Count))
            return 0;
        s.dtype = static_cast<DType>(dtypes[i]);
        s.shape.assign(shapes.begin() + static_cast<ptrdiff_t>(shapeOffsets[i]),
                       shapes.begin() + static_cast<ptrdiff_t>(shapeOffsets[i + 1]));
        const uint64_t* u = &u64[i * kU64Fields];
        s.count = u[0];
        s.finite = u[1];
        s.zeros = u[2];
        s.nan = u[3];
        s.inf = u[4];
        s.beyond3Sigma = u[5];
        s.beyond6Sigma = u[6];
        s.channelLength = u[7];
        const double* d = &f64[i * kF64Fields];
        s.min = d[0];
        s.max = d[1];
        s.absmax = d[2];
        s.mean = d[3];
        s.std = d[4];
        s.kurtosis = d[5];
        s.m2 = d[6];
        s.m3 = d[7];
        s.m4 = d[8];
        const auto h0 = static_cast<ptrdiff_t>(histOffsets[i]),
                   h1 = static_cast<ptrdiff_t>(histOffsets[i + 1]);
        if (u[8] > 1 || !Histogram::fromSparse({histKeys.begin() + h0, histKeys.begin() + h1},
                                               {histCounts.begin() + h0, histCounts.begin() + h1}, u[8] == 1,
                                               &s.histogram))
            return 0;
        const auto c0 = static_cast<ptrdiff_t>(chanOffsets[i]),
                   c1 = static_cast<ptrdiff_t>(chanOffsets[i + 1]);
        s.channelAbsmax.assign(chanAbsmax.begin() + c0, chanAbsmax.begin() + c1);
        s.channelStd.assign(chanStd.begin() + c0, chanStd.begin() + c1);
        // Internal consistency: counts add up, the histogram holds every finite value, one value per channel.
        const uint64_t channels = s.channelLength ? s.count / s.channelLength : 0;
        if (s.finite > s.count || s.count - s.finite != s.nan + s.inf || s.zeros > s.finite ||
            s.histogram.total() != s.finite || s.beyond6Sigma > s.beyond3Sigma || s.beyond3Sigma > s.finite ||
            s.channelAbsmax.size() != channels)
            return 0;
        entries[s.name] = std::move(s);
    }
    m_entries = std::move(entries);
    return m_entries.size();
}

const TensorStats* StatsCache::find(const TensorInfo& tensor) const
{
    auto it = m_entries.find(tensor.name);
    if (it == m_entries.end() || it->second.dtype != tensor.dtype || it->second.shape != tensor.shape ||
        it->second.count != tensor.elements())
        return nullptr;
    return &it->second;
}

void StatsCache::insert(const TensorStats& stats)
{
    if (stats.error.empty())
        m_entries[stats.name] = stats;
}

bool StatsCache::save()
{
    if (m_file.empty() || m_key.empty())
        return false;
    std::error_code ec;
    std::filesystem::create_directories(m_file.parent_path(), ec);

    std::vector<uint8_t> key(m_key.begin(), m_key.end()), names, dtypes;
    std::vector<uint64_t> nameOffsets{0}, shapeOffsets{0}, shapes, u64, histOffsets{0}, histCounts,
        chanOffsets{0};
    std::vector<uint16_t> histKeys;
    std::vector<double> f64;
    std::vector<float> chanAbsmax, chanStd;
    for (const auto& [name, s] : m_entries) {
        names.insert(names.end(), name.begin(), name.end());
        nameOffsets.push_back(names.size());
        dtypes.push_back(static_cast<uint8_t>(s.dtype));
        shapes.insert(shapes.end(), s.shape.begin(), s.shape.end());
        shapeOffsets.push_back(shapes.size());
        u64.insert(u64.end(), {s.count, s.finite, s.zeros, s.nan, s.inf, s.beyond3Sigma, s.beyond6Sigma,
                               s.channelLength, s.histogram.exact() ? 1u : 0u});
        f64.insert(f64.end(), {s.min, s.max, s.absmax, s.mean, s.std, s.kurtosis, s.m2, s.m3, s.m4});
        histKeys.insert(histKeys.end(), s.histogram.keys().begin(), s.histogram.keys().end());
        histCounts.insert(histCounts.end(), s.histogram.counts().begin(), s.histogram.counts().end());
        histOffsets.push_back(histKeys.size());
        chanAbsmax.insert(chanAbsmax.end(), s.channelAbsmax.begin(), s.channelAbsmax.end());
        chanStd.insert(chanStd.end(), s.channelStd.begin(), s.channelStd.end());
        chanOffsets.push_back(chanAbsmax.size());
    }

    // Write to a private temporary name, then publish the file and, last, the side file vouching for it.
    std::random_device rd;
    const std::string unique = std::to_string(::getpid()) + "." + std::to_string(rd());
    auto tmp = m_file;
    tmp += ".tmp." + unique;
    {
        std::lock_guard lock(hdf5Mutex());
        H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
        Hdf5Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
        if (!file.valid())
            return false;
        const hid_t f = file.get();
        const bool ok = writeArray(f, "key", key) && writeArray(f, "names", names) &&
                        writeArray(f, "name_offsets", nameOffsets) && writeArray(f, "dtypes", dtypes) &&
                        writeArray(f, "shapes", shapes) && writeArray(f, "shape_offsets", shapeOffsets) &&
                        writeArray(f, "u64", u64, kU64Fields) && writeArray(f, "f64", f64, kF64Fields) &&
                        writeArray(f, "hist_offsets", histOffsets) && writeArray(f, "hist_keys", histKeys) &&
                        writeArray(f, "hist_counts", histCounts) &&
                        writeArray(f, "chan_offsets", chanOffsets) &&
                        writeArray(f, "chan_absmax", chanAbsmax) && writeArray(f, "chan_std", chanStd);
        if (!ok) {
            std::filesystem::remove(tmp, ec);
            return false;
        }
    }
    const auto bytes = readWhole(tmp, kMaxCacheBytes);
    if (!bytes) {
        std::filesystem::remove(tmp, ec);
        return false;
    }
    auto sidecar = m_file, sidecarTmp = m_file;
    sidecar += ".sum";
    sidecarTmp += ".sum.tmp." + unique;
    {
        std::ofstream out(sidecarTmp, std::ios::binary | std::ios::trunc);
        out << kCacheVersion << "\nsize " << bytes->size() << "\nsha256 " << sha256Hex(*bytes) << '\n';
        if (!out) {
            std::filesystem::remove(tmp, ec);
            std::filesystem::remove(sidecarTmp, ec);
            return false;
        }
    }
    std::filesystem::rename(tmp, m_file, ec);
    if (!ec)
        std::filesystem::rename(sidecarTmp, sidecar, ec);
    if (ec) {
        std::filesystem::remove(tmp, ec);
        std::filesystem::remove(sidecarTmp, ec);
        return false;
    }
    return true;
}

} // namespace qs
