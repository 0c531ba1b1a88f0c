#include "core/model/modelidentity.h"

#include "core/model/mappedfile.h"
#include "core/model/model.h"

#include <QByteArray>
#include <QCryptographicHash>
#include <QStandardPaths>
#include <QString>
#include <cstdlib>
#include <sstream>

namespace qs {

namespace {

std::filesystem::path canonicalPath(const std::filesystem::path& p)
{
    std::error_code ec;
    auto abs = std::filesystem::absolute(p, ec);
    auto c = std::filesystem::weakly_canonical(ec ? p : abs, ec);
    return ec ? p : c;
}

} // namespace

std::filesystem::path cacheDirectory()
{
    if (const char* env = std::getenv("QUANTSCOPE_CACHE_DIR"); env && *env)
        return env;
    const QString base = QStandardPaths::writableLocation(QStandardPaths::GenericCacheLocation);
    if (base.isEmpty())
        return {};
    return std::filesystem::path(base.toStdString()) / "quantscope" / "stats";
}

ModelIdentity modelIdentity(const Model& model)
{
    std::ostringstream key, paths;
    for (const auto& file : model.files()) {
        const std::filesystem::path path = canonicalPath(file->path());
        std::error_code ec;
        const auto size = std::filesystem::file_size(path, ec);
        if (ec)
            return {};
        const auto mtime = std::filesystem::last_write_time(path, ec);
        if (ec)
            return {};
        key << path.string() << '\t' << size << '\t' << mtime.time_since_epoch().count() << '\n';
        paths << path.string() << '\n';
    }
    if (model.files().empty()) { // nothing mapped (a config-only or in-memory model): the path is all there is
        key << canonicalPath(model.path()).string() << '\n';
        paths << key.str();
    }
    ModelIdentity id;
    id.key = key.str();
    id.fileStem = QCryptographicHash::hash(QByteArray::fromStdString(paths.str()), QCryptographicHash::Sha256)
                      .toHex()
                      .left(32)
                      .toStdString();
    return id;
}

std::filesystem::path modelCacheFile(const Model& model, const std::filesystem::path& dir,
                                     const std::string& suffix)
{
    const std::filesystem::path base = dir.empty() ? cacheDirectory() : dir;
    const ModelIdentity id = modelIdentity(model);
    if (base.empty() || id.key.empty())
        return {};
    return base / (id.fileStem + suffix);
}

} // namespace qs
