#include "core/plan/gpucatalog.h"
#include "core/io/jsonscan.h"

#include "core/util/fileio.h"

#include "core/util/error.h"
#include "core/util/strings.h"

#include <QCoreApplication>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QStandardPaths>
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

namespace qs {

namespace {

// Compares ignoring case, spaces, '-' and '_' so that "RTX 4090", "rtx-4090" and "rtx_4090" agree.
std::string squash(std::string_view s)
{
    std::string r;
    for (unsigned char c : s)
        if (!std::isspace(c) && c != '-' && c != '_')
            r.push_back(lowerChar(static_cast<char>(c)));
    return r;
}

[[noreturn]] void bad(const std::string& file, const std::string& field, const std::string& message)
{
    throw FormatError(ErrorCode::BadValue, file, field, std::nullopt, message);
}

} // namespace

const char* gpuKindName(GpuKind kind)
{
    switch (kind) {
    case GpuKind::Datacenter:
        return "datacenter";
    case GpuKind::Workstation:
        return "workstation";
    case GpuKind::Consumer:
        return "consumer";
    case GpuKind::Unified:
        return "unified";
    }
    return "consumer";
}

uint64_t GpuSpec::usableBytes() const
{
    const uint64_t total = driverMemoryBytes ? driverMemoryBytes : memoryBytes;
    if (usableFraction >= 1.0)
        return total;
    return static_cast<uint64_t>(std::floor(static_cast<double>(total) * std::max(0.0, usableFraction)));
}

const GpuSpec* GpuCatalog::find(std::string_view key) const
{
    const std::string k = squash(key);
    if (k.empty())
        return nullptr;
    for (const auto& g : m_gpus) {
        if (squash(g.id) == k || squash(g.name) == k)
            return &g;
        for (const auto& a : g.aliases)
            if (squash(a) == k)
                return &g;
    }
    const GpuSpec* match = nullptr;
    for (const auto& g : m_gpus) {
        if (squash(g.name).find(k) != std::string::npos || squash(g.id).find(k) != std::string::npos) {
            if (match)
                return nullptr; // ambiguous
            match = &g;
        }
    }
    return match;
}

void GpuCatalog::addOrReplace(GpuSpec gpu)
{
    for (auto& g : m_gpus) {
        if (lower(g.id) == lower(gpu.id)) {
            g = std::move(gpu);
            return;
        }
    }
    m_gpus.push_back(std::move(gpu));
}

GpuCatalog GpuCatalog::fromJson(const std::string& json, const std::string& fileName)
{
    const QJsonDocument doc = json::parseDocument(json, fileName, "json");
    if (!doc.isObject())
        bad(fileName, "root", "expected a JSON object");
    const QJsonObject root = doc.object();
    const int version = root.value(QStringLiteral("version")).toInt(-1);
    if (version != 1)
        throw FormatError(ErrorCode::BadVersion, fileName, "version", std::nullopt,
                          "unsupported GPU catalogue version " + std::to_string(version) + " (expected 1)");
    const QJsonValue list = root.value(QStringLiteral("gpus"));
    if (!list.isArray())
        bad(fileName, "gpus", "expected an array");
    GpuCatalog catalog;
    int index = 0;
    for (const QJsonValue& v : list.toArray()) {
        const std::string where = "gpus[" + std::to_string(index++) + "]";
        if (!v.isObject())
            bad(fileName, where, "expected an object");
        const QJsonObject o = v.toObject();
        GpuSpec g;
        g.id = o.value(QStringLiteral("id")).toString().toStdString();
        if (g.id.empty())
            bad(fileName, where + ".id", "missing or empty");
        g.name = o.value(QStringLiteral("name")).toString(QString::fromStdString(g.id)).toStdString();
        g.vendor = o.value(QStringLiteral("vendor")).toString().toStdString();
        const std::string kind =
            lower(o.value(QStringLiteral("kind")).toString(QStringLiteral("consumer")).toStdString());
        if (kind == "datacenter")
            g.kind = GpuKind::Datacenter;
        else if (kind == "workstation")
            g.kind = GpuKind::Workstation;
        else if (kind == "consumer")
            g.kind = GpuKind::Consumer;
        else if (kind == "unified")
            g.kind = GpuKind::Unified;
        else
            bad(fileName, where + ".kind", "unknown kind '" + kind + "'");
        const QJsonValue mem = o.value(QStringLiteral("memory_bytes"));
        const QJsonValue gib = o.value(QStringLiteral("memory_gib"));
        double bytes = 0;
        if (mem.isDouble())
            bytes = mem.toDouble();
        else if (gib.isDouble())
            bytes = gib.toDouble() * 1073741824.0;
        // JSON numbers are doubles: anything above 2^53 would be inexact, and no GPU has 8 PiB.
        if (!(bytes >= 1 && bytes <= 9007199254740992.0))
            bad(fileName, where + ".memory_bytes", "missing or out of range");
        g.memoryBytes = static_cast<uint64_t>(bytes);
        // Driver-reported total, in bytes or MiB (nvidia-smi prints MiB).
        const QJsonValue usable = o.value(QStringLiteral("usable_bytes"));
        const QJsonValue usableMib = o.value(QStringLiteral("usable_mib"));
        if (!usable.isUndefined() || !usableMib.isUndefined()) {
            const double u = usable.isDouble()      ? usable.toDouble()
                             : usableMib.isDouble() ? usableMib.toDouble() * 1048576.0
                                                    : -1;
            if (!(u >= 1 && u <= 9007199254740992.0 && u == std::floor(u)))
                bad(fileName, where + (usable.isUndefined() ? ".usable_mib" : ".usable_bytes"),
                    "must be a positive whole number");
            g.driverMemoryBytes = static_cast<uint64_t>(u);
        }
        g.memorySource = o.value(QStringLiteral("memory_source"))
                             .toString(g.driverMemoryBytes ? QStringLiteral("driver-reported")
                                                           : QStringLiteral("nominal"))
                             .toStdString();
        g.architecture = lower(o.value(QStringLiteral("architecture")).toString().toStdString());
        g.bandwidthGBps = o.value(QStringLiteral("bandwidth_gb_s")).toDouble(-1);
        if (!(g.bandwidthGBps > 0 && g.bandwidthGBps < 1e6))
            bad(fileName, where + ".bandwidth_gb_s", "missing or out of range");
        g.usableFraction = o.value(QStringLiteral("usable_fraction")).toDouble(1.0);
        if (!(g.usableFraction > 0 && g.usableFraction <= 1))
            bad(fileName, where + ".usable_fraction", "must be in (0, 1]");
        for (const QJsonValue& a : o.value(QStringLiteral("aliases")).toArray())
            if (a.isString())
                g.aliases.push_back(a.toString().toStdString());
        catalog.addOrReplace(std::move(g));
    }
    return catalog;
}

GpuCatalog GpuCatalog::fromFile(const std::filesystem::path& path)
{
    // A catalogue is a few kilobytes; refuse absurd files rather than reading them whole.
    GpuCatalog c = fromJson(readRegularFile(path, kMaxSmallJsonBytes), path.string());
    c.m_sources.push_back(path);
    return c;
}

std::filesystem::path GpuCatalog::userCatalogPath()
{
    const QString base = QStandardPaths::writableLocation(QStandardPaths::GenericConfigLocation);
    return std::filesystem::path(base.toStdString()) / "quantscope" / "gpus.json";
}

GpuCatalog GpuCatalog::load()
{
    std::vector<std::filesystem::path> candidates;
    if (const char* env = std::getenv("QUANTSCOPE_GPUS"); env && *env) {
        candidates.emplace_back(env);
    } else {
#ifdef QS_DATA_INSTALL_DIR
        candidates.emplace_back(std::filesystem::path(QS_DATA_INSTALL_DIR) / "gpus.json");
#endif
        if (QCoreApplication::instance())
            candidates.emplace_back(
                std::filesystem::path(QCoreApplication::applicationDirPath().toStdString()) / ".." / "share" /
                "quantscope" / "gpus.json");
#ifdef QS_RESOURCE_SOURCE_DIR
        candidates.emplace_back(std::filesystem::path(QS_RESOURCE_SOURCE_DIR) / "gpus.json");
#endif
    }
    std::error_code ec;
    GpuCatalog catalog;
    bool found = false;
    for (const auto& c : candidates) {
        if (std::filesystem::is_regular_file(c, ec)) {
            catalog = fromFile(c);
            found = true;
            break;
        }
    }
    if (!found)
        throw Error(ErrorCode::Io, candidates.empty() ? std::string("no GPU catalogue found")
                                                      : "no GPU catalogue found (looked for " +
                                                            candidates.front().string() + " and others)");
    const auto user = userCatalogPath();
    if (std::filesystem::is_regular_file(user, ec)) {
        GpuCatalog extra = fromFile(user);
        for (auto& g : extra.m_gpus)
            catalog.addOrReplace(std::move(g));
        catalog.m_sources.push_back(user);
    }
    return catalog;
}

} // namespace qs
