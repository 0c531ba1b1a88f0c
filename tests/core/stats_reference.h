#pragma once
// Independent references for the statistics tests: plain double-precision two-pass formulas over the
// decoded values, and test models built by hand from raw bytes in a temporary file (no loader involved).

#include "core/model/model.h"
#include "core/stats/histogram.h"

#include <QTemporaryDir>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

namespace qstest {

struct Reference {
    uint64_t count = 0, finite = 0, zeros = 0, nan = 0, inf = 0;
    double min = 0, max = 0, absmax = 0, mean = 0, std = 0, kurtosis = 0;
    std::vector<double> channelAbsmax, channelStd;
};

// Neumaier's compensated sum: a reference accurate to the last bits even when one term dwarfs the rest.
struct CompensatedSum {
    double sum = 0, c = 0;
    void add(double v)
    {
        const double t = sum + v;
        c += std::fabs(sum) >= std::fabs(v) ? (sum - t) + v : (v - t) + sum;
        sum = t;
    }
    double value() const { return sum + c; }
};

// Two passes in double with compensated sums: the mean, then central sums of powers.
inline Reference reference(const std::vector<float>& x, uint64_t channelLength)
{
    Reference r;
    r.count = x.size();
    CompensatedSum sum;
    r.min = std::numeric_limits<double>::infinity();
    r.max = -r.min;
    for (float v : x) {
        if (std::isnan(v)) {
            ++r.nan;
            continue;
        }
        if (std::isinf(v)) {
            ++r.inf;
            continue;
        }
        ++r.finite;
        r.zeros += v == 0;
        sum.add(v);
        r.min = std::min(r.min, double(v));
        r.max = std::max(r.max, double(v));
    }
    const double n = double(r.finite);
    r.mean = sum.value() / n;
    CompensatedSum s2, s4;
    for (float v : x) {
        if (!std::isfinite(v))
            continue;
        const double d = v - r.mean;
        s2.add(d * d);
        s4.add(d * d * d * d);
    }
    const double m2 = s2.value(), m4 = s4.value();
    r.std = std::sqrt(m2 / n);
    r.kurtosis = n * m4 / (m2 * m2) - 3;
    r.absmax = std::max(std::fabs(r.min), std::fabs(r.max));
    if (channelLength) {
        for (size_t c = 0; c * channelLength < x.size(); ++c) {
            double s = 0, a = 0, k = 0;
            for (size_t i = c * channelLength; i < (c + 1) * channelLength; ++i)
                if (std::isfinite(x[i])) {
                    s += x[i];
                    k += 1;
                    a = std::max(a, double(std::fabs(x[i])));
                }
            const double mean = k ? s / k : 0;
            double q = 0;
            for (size_t i = c * channelLength; i < (c + 1) * channelLength; ++i)
                if (std::isfinite(x[i]))
                    q += (x[i] - mean) * (x[i] - mean);
            r.channelAbsmax.push_back(a);
            r.channelStd.push_back(k ? std::sqrt(q / k) : 0);
        }
    }
    return r;
}

// Values beyond k standard deviations, by the definition the engine documents.
inline uint64_t beyond(const std::vector<float>& x, double mean, double std, double k)
{
    uint64_t c = 0;
    for (float v : x)
        if (std::isfinite(v) && (v < mean - k * std || v > mean + k * std))
            ++c;
    return c;
}

// A binned histogram counted straight from the values with the given edges: v is in bin i when
// edges[i] <= v < edges[i + 1]; the last bin is closed.
inline std::vector<uint64_t> referenceBins(const std::vector<float>& x, const std::vector<double>& edges)
{
    std::vector<uint64_t> counts(edges.size() - 1, 0);
    for (float v : x) {
        if (!std::isfinite(v) || v < edges.front() || v > edges.back())
            continue;
        for (size_t i = 0; i + 1 < edges.size(); ++i)
            if (v < edges[i + 1] || i + 2 == edges.size()) {
                ++counts[i];
                break;
            }
    }
    return counts;
}

// Whether each edge lies within half a bfloat16 step (2^-8 relative, or the smallest key step near 0) of
// the uniform grid of `bins` bins over [lo, hi], and the edges increase.
inline bool edgesNearUniform(const std::vector<double>& edges, size_t bins, double lo, double hi)
{
    if (edges.size() < 2 || edges.size() > bins + 1)
        return false;
    const double w = (hi - lo) / double(bins);
    for (size_t i = 0; i < edges.size(); ++i) {
        if (i > 0 && !(edges[i] > edges[i - 1]))
            return false;
        const double slack = std::ldexp(std::fabs(edges[i]), -7) + std::ldexp(1.0, -130);
        const double k = std::round((edges[i] - lo) / w);
        if (std::fabs(edges[i] - (lo + k * w)) > slack)
            return false;
    }
    return true;
}

// A model over one temporary file holding the given tensors back to back.
class TestModel {
public:
    struct Tensor {
        std::string name;
        qs::DType dtype;
        std::vector<uint64_t> shape;
        std::vector<char> bytes;
    };

    explicit TestModel(const std::vector<Tensor>& tensors, size_t misalign = 0)
    {
        m_path = m_dir.filePath(QStringLiteral("model.bin")).toStdString();
        std::ofstream out(m_path, std::ios::binary);
        std::vector<uint64_t> offsets;
        uint64_t offset = misalign;
        out.write(std::string(misalign, '\0').data(), std::streamsize(misalign));
        for (const auto& t : tensors) {
            offsets.push_back(offset);
            out.write(t.bytes.data(), std::streamsize(t.bytes.size()));
            offset += t.bytes.size();
        }
        out.close();
        m_model = std::make_shared<qs::Model>(qs::ModelFormat::Safetensors, m_path);
        const uint32_t file = m_model->addFile(qs::MappedFile::open(m_path));
        for (size_t i = 0; i < tensors.size(); ++i) {
            qs::TensorInfo info;
            info.name = tensors[i].name;
            info.shape = tensors[i].shape;
            info.dtype = tensors[i].dtype;
            info.bytes = tensors[i].bytes.size();
            info.fileIndex = file;
            info.offset = offsets[i];
            m_model->addTensor(info);
        }
        m_model->finalize();
    }

    qs::Model& model() { return *m_model; }
    std::shared_ptr<qs::Model> shared() { return m_model; }
    const std::string& path() const { return m_path; }

private:
    QTemporaryDir m_dir;
    std::string m_path;
    std::shared_ptr<qs::Model> m_model;
};

inline std::vector<char> f32Bytes(const std::vector<float>& v)
{
    std::vector<char> b(v.size() * 4);
    if (!v.empty())
        std::memcpy(b.data(), v.data(), b.size());
    return b;
}

inline std::vector<char> bf16Bytes(const std::vector<float>& v)
{
    std::vector<char> b(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = qs::floatToBf16(v[i]);
        std::memcpy(b.data() + 2 * i, &h, 2);
    }
    return b;
}

inline std::vector<char> f16Bytes(const std::vector<float>& v)
{
    std::vector<char> b(v.size() * 2);
    for (size_t i = 0; i < v.size(); ++i) {
        const uint16_t h = qs::floatToHalf(v[i]);
        std::memcpy(b.data() + 2 * i, &h, 2);
    }
    return b;
}

// Every value of a tensor decoded to float, the way the reference sees it.
inline std::vector<float> decodeAll(const qs::Model& model, const qs::TensorInfo& t)
{
    std::vector<float> v(t.elements());
    if (!v.empty())
        model.decode(t, 0, v.size(), v.data());
    return v;
}

} // namespace qstest
