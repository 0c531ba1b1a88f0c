#pragma once
// Keeps a GUI test away from the user's settings, caches and autosaves: everything goes below `dir`, and the
// whole-model analysis does not start by itself after a load.

#include <QCoreApplication>
#include <QSettings>
#include <QString>
#include <QTemporaryDir>

inline void isolateGuiTest(const QTemporaryDir& dir, const QString& applicationName)
{
    qputenv("QUANTSCOPE_CACHE_DIR", dir.filePath(QStringLiteral("cache")).toLocal8Bit());
    qputenv("XDG_DATA_HOME", dir.filePath(QStringLiteral("data")).toLocal8Bit());
    qputenv("XDG_CONFIG_HOME", dir.filePath(QStringLiteral("config")).toLocal8Bit());
    QSettings::setDefaultFormat(QSettings::IniFormat);
    QSettings::setPath(QSettings::IniFormat, QSettings::UserScope, dir.path());
    QCoreApplication::setOrganizationName(QStringLiteral("QuantscopeTest"));
    QCoreApplication::setApplicationName(applicationName);
    QSettings().setValue(QStringLiteral("analysis/automatic"), false);
}
