// quantscope-cli formats: the built-in quantization formats with their exact bits per weight.
#include "app/cli/command.h"
#include "core/quant/format.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <algorithm>
#include <cstdio>

namespace {

// Bits per weight are quoted for a 4096 x 4096 weight (Llama-7B's attention projections); group formats
// with a per-row or per-tensor part depend slightly on the shape.
constexpr uint64_t kRefRows = 4096, kRefCols = 4096;

const char* kindName(qs::FormatKind k)
{
    switch (k) {
    case qs::FormatKind::Float:
        return "float";
    case qs::FormatKind::Ggml:
        return "ggml";
    case qs::FormatKind::Integer:
        return "integer";
    case qs::FormatKind::Fp8:
        return "fp8";
    case qs::FormatKind::Nf4:
        return "nf4";
    case qs::FormatKind::Mx:
        return "mx";
    }
    return "?";
}

int runFormats(QCommandLineParser& parser)
{
    const auto defaults = qs::defaultSensitivityFormats();
    auto isDefault = [&](const std::string& n) {
        return std::find(defaults.begin(), defaults.end(), n) != defaults.end();
    };
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonArray list;
        for (const auto& name : qs::allFormatNames()) {
            const auto f = qs::findFormat(name);
            const auto& t = f->traits();
            QJsonObject o;
            o[QStringLiteral("name")] = QString::fromStdString(t.name);
            o[QStringLiteral("kind")] = QString::fromLatin1(kindName(t.kind));
            o[QStringLiteral("bits")] = t.bits;
            o[QStringLiteral("group_size")] = t.groupSize;
            o[QStringLiteral("symmetric")] = t.symmetric;
            o[QStringLiteral("storage")] = t.storage
                                               ? QJsonValue(QString::fromLatin1(qs::dtypeName(*t.storage)))
                                               : QJsonValue(QJsonValue::Null);
            o[QStringLiteral("bits_per_weight")] = *qs::formatBitsPerWeight(*f, kRefRows, kRefCols);
            o[QStringLiteral("bytes_4096x4096")] = static_cast<qint64>(*f->storedBytes(kRefRows, kRefCols));
            o[QStringLiteral("available")] = f->available();
            o[QStringLiteral("default")] = isDefault(name);
            o[QStringLiteral("layout")] = QString::fromStdString(t.layout);
            list.append(o);
        }
        QJsonObject root;
        root[QStringLiteral("reference_shape")] =
            QJsonArray{static_cast<qint64>(kRefRows), static_cast<qint64>(kRefCols)};
        root[QStringLiteral("formats")] = list;
        cli::printJson(root);
        return 0;
    }
    std::printf("%-18s %-8s %4s %6s %-5s %9s  %s\n", "format", "kind", "bits", "group", "sym", "bpw",
                "layout");
    for (const auto& name : qs::allFormatNames()) {
        const auto f = qs::findFormat(name);
        const auto& t = f->traits();
        const std::string group = t.groupSize > 0    ? std::to_string(t.groupSize)
                                  : t.groupSize == 0 ? "tensor"
                                                     : "row";
        std::printf("%-18s %-8s %4d %6s %-5s %9.4f  %s%s%s\n", t.name.c_str(), kindName(t.kind), t.bits,
                    group.c_str(), t.symmetric ? "yes" : "no",
                    *qs::formatBitsPerWeight(*f, kRefRows, kRefCols), t.layout.c_str(),
                    isDefault(name) ? " [default]" : "", f->available() ? "" : " [not available]");
    }
    std::printf(
        "\nbits per weight for a %llu x %llu weight, including scales, zero points and block headers\n",
        static_cast<unsigned long long>(kRefRows), static_cast<unsigned long long>(kRefCols));
    return 0;
}

const CliRegistrar formats({"formats", "formats [--json]", "quantization formats and their bits per weight",
                            [](QCommandLineParser& p) {
                                p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
                            },
                            runFormats});

} // namespace
