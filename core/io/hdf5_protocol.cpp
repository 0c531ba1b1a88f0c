#include "core/io/hdf5_protocol.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>

namespace qs::h5 {

namespace {

std::optional<std::string> stringField(const QJsonObject& o, QLatin1StringView key)
{
    const QJsonValue v = o.value(key);
    if (!v.isString())
        return std::nullopt;
    return v.toString().toStdString();
}

// A non-negative integer; JSON numbers beyond int64 or with a fraction are rejected.
std::optional<uint64_t> uintValue(const QJsonValue& v)
{
    if (!v.isDouble())
        return std::nullopt;
    const qint64 i = v.toInteger(-1);
    if (i < 0)
        return std::nullopt;
    return static_cast<uint64_t>(i);
}

bool parseDataset(const QJsonObject& o, Dataset& d)
{
    auto path = stringField(o, QLatin1StringView("path"));
    auto type = stringField(o, QLatin1StringView("type"));
    auto storage = stringField(o, QLatin1StringView("storage"));
    const QJsonValue shape = o.value(QLatin1StringView("shape"));
    if (!path || path->empty() || !type || !storage || !shape.isArray())
        return false;
    d.path = std::move(*path);
    d.type = std::move(*type);
    const QJsonArray dims = shape.toArray();
    if (static_cast<size_t>(dims.size()) > kMaxRank)
        return false;
    for (const auto& dim : dims) {
        auto v = uintValue(dim);
        if (!v)
            return false;
        d.shape.push_back(*v);
    }
    d.bigEndian = o.value(QLatin1StringView("order")).toString() == QLatin1StringView("be");
    d.layout = o.value(QLatin1StringView("layout")).toString().toStdString();
    const QJsonArray filters = o.value(QLatin1StringView("filters")).toArray();
    for (qsizetype i = 0; i < filters.size() && i < 32; ++i)
        d.filters.push_back(filters[i].toString().toStdString());
    if (*storage == "direct" || *storage == "copy") {
        d.storage = *storage == "direct" ? Storage::Direct : Storage::Copy;
        auto offset = uintValue(o.value(QLatin1StringView("offset")));
        auto bytes = uintValue(o.value(QLatin1StringView("bytes")));
        if (!offset || !bytes)
            return false;
        d.offset = *offset;
        d.bytes = *bytes;
    } else if (*storage == "none") {
        d.storage = Storage::None;
        d.reason = o.value(QLatin1StringView("reason")).toString().toStdString();
        if (d.reason.empty())
            d.reason = "not available";
    } else {
        return false;
    }
    return true;
}

bool parseAttribute(const QJsonObject& o, Attribute& a)
{
    auto obj = stringField(o, QLatin1StringView("obj"));
    auto name = stringField(o, QLatin1StringView("name"));
    auto kind = stringField(o, QLatin1StringView("kind"));
    const QJsonValue values = o.value(QLatin1StringView("values"));
    if (!obj || !name || !kind || !values.isArray())
        return false;
    a.object = std::move(*obj);
    a.name = std::move(*name);
    const QJsonArray arr = values.toArray();
    if (static_cast<size_t>(arr.size()) > kMaxAttrValues)
        return false;
    if (*kind == "str") {
        a.kind = Attribute::Kind::String;
        for (const auto& v : arr) {
            if (!v.isString())
                return false;
            a.strings.push_back(v.toString().toStdString());
        }
    } else if (*kind == "int" || *kind == "float") {
        a.kind = *kind == "int" ? Attribute::Kind::Int : Attribute::Kind::Float;
        for (const auto& v : arr) {
            if (!v.isDouble() && !v.isNull())
                return false;
            a.numbers.push_back(v.isNull() ? std::numeric_limits<double>::quiet_NaN() : v.toDouble());
        }
    } else {
        return false;
    }
    return true;
}

// Returns false when the line is malformed.
bool parseLine(std::string_view line, ProbeOutput& out)
{
    if (line.size() > kMaxLineBytes)
        return false;
    QJsonParseError err{};
    const QJsonDocument doc = QJsonDocument::fromJson(
        QByteArray::fromRawData(line.data(), static_cast<qsizetype>(line.size())), &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject())
        return false;
    const QJsonObject o = doc.object();
    const QString t = o.value(QLatin1StringView("t")).toString();
    if (t == QLatin1StringView("probe")) {
        out.version = o.value(QLatin1StringView("v")).toInt(0);
        out.library = o.value(QLatin1StringView("lib")).toString().left(64).toStdString();
        return true;
    }
    if (t == QLatin1StringView("group")) {
        auto path = stringField(o, QLatin1StringView("path"));
        if (!path || out.groups.size() >= kMaxDatasets)
            return false;
        out.groups.push_back(std::move(*path));
        return true;
    }
    if (t == QLatin1StringView("attr")) {
        if (out.attributes.size() >= kMaxAttributes)
            return false;
        Attribute a;
        if (!parseAttribute(o, a))
            return false;
        out.attributes.push_back(std::move(a));
        return true;
    }
    if (t == QLatin1StringView("dataset")) {
        if (out.datasets.size() >= kMaxDatasets)
            return false;
        Dataset d;
        if (!parseDataset(o, d))
            return false;
        out.datasets.push_back(std::move(d));
        return true;
    }
    if (t == QLatin1StringView("skip")) {
        auto path = stringField(o, QLatin1StringView("path"));
        auto reason = stringField(o, QLatin1StringView("reason"));
        if (!path || !reason || out.warnings.size() >= kMaxDatasets)
            return false;
        out.warnings.push_back(*path + ": " + *reason);
        return true;
    }
    if (t == QLatin1StringView("warning")) {
        auto message = stringField(o, QLatin1StringView("message"));
        if (!message || out.warnings.size() >= kMaxDatasets)
            return false;
        out.warnings.push_back(std::move(*message));
        return true;
    }
    if (t == QLatin1StringView("error")) {
        auto code = stringField(o, QLatin1StringView("code"));
        if (!code)
            return false;
        out.errorCode = code->substr(0, 64);
        out.errorMessage = o.value(QLatin1StringView("message")).toString().left(4096).toStdString();
        return true;
    }
    if (t == QLatin1StringView("end")) {
        out.complete = true;
        return true;
    }
    return false;
}

} // namespace

const Attribute* ProbeOutput::findAttribute(std::string_view object, std::string_view name) const
{
    for (const auto& a : attributes)
        if (a.object == object && a.name == name)
            return &a;
    return nullptr;
}

ProbeOutput parseProbeOutput(std::string_view output, size_t* malformedLines)
{
    ProbeOutput out;
    size_t bad = 0;
    if (output.size() > kMaxOutputBytes) {
        output = output.substr(0, kMaxOutputBytes);
        ++bad;
    }
    size_t pos = 0;
    while (pos < output.size()) {
        size_t end = output.find('\n', pos);
        const bool terminated = end != std::string_view::npos;
        if (!terminated)
            end = output.size();
        const std::string_view line = output.substr(pos, end - pos);
        pos = end + 1;
        if (line.empty())
            continue;
        // An unterminated last line means the probe died mid-write: ignore it. Records after "end" are
        // not part of a complete walk.
        if (!terminated || out.complete || !parseLine(line, out))
            ++bad;
    }
    if (malformedLines)
        *malformedLines = bad;
    return out;
}

} // namespace qs::h5
