#pragma once
// Writes small F32 safetensors files for GUI tests (independent of the loader: header built by hand).

#include <QFile>
#include <QString>

#include <cstdint>
#include <string>
#include <vector>

namespace qstest {

struct F32Tensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::vector<float> values;
};

inline bool writeSafetensorsF32(const QString& path, const std::vector<F32Tensor>& tensors)
{
    std::string header = "{";
    uint64_t offset = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = tensors[i];
        std::string shape;
        for (size_t d = 0; d < t.shape.size(); ++d)
            shape += (d ? "," : "") + std::to_string(t.shape[d]);
        const uint64_t bytes = t.values.size() * 4;
        header += (i ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape +
                  "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
        offset += bytes;
    }
    header += "}";
    while (header.size() % 8)
        header += ' ';
    QFile f(path);
    if (!f.open(QIODevice::WriteOnly))
        return false;
    const uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(header.data(), qint64(header.size()));
    for (const auto& t : tensors)
        f.write(reinterpret_cast<const char*>(t.values.data()), qint64(t.values.size() * 4));
    return f.error() == QFile::NoError;
}

} // namespace qstest
