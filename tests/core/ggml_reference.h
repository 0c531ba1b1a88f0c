#pragma once
// Access to tests/data/reference/ggml-quants.gguf (ggml's own quantization reference vectors) and to
// ggml's error table beside it, shared by the ggml decode and quantize tests. The GGUF is read through
// the project's loader (qs::openModel); nothing here parses GGUF.

#include "core/model/model.h"

#include <QFile>
#include <QString>
#include <QStringList>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace ggmlref {

inline const char* const kDistributions[] = {"gauss", "student_t3", "outlier_cols", "real_stories260k",
                                             "real_ppocr_rec"};
// Every type in the file (lower-case names as in the tensor names) ...
inline const char* const kTypes[] = {"f16",  "bf16", "q4_0", "q4_1", "q5_0",   "q5_1",   "q8_0", "q2_K",
                                     "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "mxfp4"};
// ... and those that also have an importance-weighted D.<type>.imx.
inline const char* const kImxTypes[] = {"q4_0", "q4_1", "q5_0", "q5_1",   "q2_K",  "q3_K",
                                        "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs"};
constexpr uint64_t kRows = 8, kCols = 2048, kCount = kRows * kCols;

class Reference {
public:
    Reference()
    {
        m_model = qs::openModel(QS_TEST_DATA "/reference/ggml-quants.gguf");
        QFile table(QS_TEST_DATA "/reference/ggml-quants-error-table.txt");
        if (!table.open(QIODevice::ReadOnly | QIODevice::Text))
            throw std::runtime_error("cannot open the ggml error table");
        while (!table.atEnd()) {
            // "gauss q4_K imx=1 bytes= 9216 bpw=4.5000 rmse=1.509159e-03 sqnr=22.48 dB"
            const QStringList parts = QString::fromUtf8(table.readLine()).simplified().split(' ');
            if (parts.size() < 4 || !parts[2].startsWith(QLatin1String("imx=")))
                continue;
            for (const QString& p : parts)
                if (p.startsWith(QLatin1String("rmse=")))
                    m_rmse[(parts[0] + '.' + parts[1] + (parts[2] == QLatin1String("imx=1") ? ".imx" : ""))
                               .toStdString()] = p.mid(5).toDouble();
        }
    }

    const qs::Model& model() const { return *m_model; }
    const qs::TensorInfo& tensor(const std::string& name) const
    {
        const auto* t = m_model->find(name);
        if (!t)
            throw std::runtime_error("reference tensor missing: " + name);
        return *t;
    }
    std::span<const std::byte> bytes(const std::string& name) const { return m_model->rawData(tensor(name)); }
    std::vector<float> floats(const std::string& name) const
    {
        const auto raw = bytes(name);
        std::vector<float> v(raw.size() / 4);
        std::memcpy(v.data(), raw.data(), v.size() * 4);
        return v;
    }
    // ggml's RMSE for "D.type" or "D.type.imx" from the error table; NaN when absent.
    double tableRmse(const std::string& key) const
    {
        const auto it = m_rmse.find(key);
        return it == m_rmse.end() ? std::nan("") : it->second;
    }

private:
    std::shared_ptr<qs::Model> m_model;
    std::map<std::string, double> m_rmse;
};

// RMSE as ggml's table computes it: over the whole tensor, accumulated in double.
inline double rmse(const std::vector<float>& a, const std::vector<float>& b)
{
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        s += d * d;
    }
    return std::sqrt(s / static_cast<double>(a.size()));
}

} // namespace ggmlref
