#include "app/gui/recentfiles.h"

#include <QDir>
#include <QFileInfo>
#include <QMenu>
#include <QSettings>

#include <algorithm>

namespace qs {

namespace {
constexpr int maxRecentFiles = 10;
const QString settingsKey = QStringLiteral("recentFiles");
} // namespace

RecentFiles::RecentFiles(QMenu* menu, QObject* parent)
    : QObject(parent), m_menu(menu), m_paths(QSettings().value(settingsKey).toStringList())
{
    rebuildMenu();
}

QStringList RecentFiles::labels(const QStringList& paths)
{
    QStringList out;
    for (const QString& path : paths) {
        const QFileInfo info(path);
        QString label = info.fileName();
        const auto same = std::count_if(paths.begin(), paths.end(),
                                        [&](const QString& p) { return QFileInfo(p).fileName() == label; });
        if (same > 1) {
            // Climb until the trailing path differs from every other entry with the same name.
            QStringList parts = QDir::cleanPath(info.absoluteFilePath()).split(QLatin1Char('/'), Qt::SkipEmptyParts);
            for (qsizetype keep = 2; keep <= parts.size(); ++keep) {
                const QString tail = parts.mid(parts.size() - keep).join(QLatin1Char('/'));
                const bool unique = std::none_of(paths.begin(), paths.end(), [&](const QString& p) {
                    return p != path && QDir::cleanPath(QFileInfo(p).absoluteFilePath()).endsWith(QLatin1Char('/') + tail);
                });
                if (unique || keep == parts.size()) {
                    label = QStringLiteral("%1 \u2014 %2").arg(info.fileName(), QDir::toNativeSeparators(
                                                                     parts.mid(parts.size() - keep, keep - 1).join(QLatin1Char('/'))));
                    break;
                }
            }
        }
        out.push_back(label);
    }
    return out;
}

void RecentFiles::add(const QString& path)
{
    m_paths.removeAll(path);
    m_paths.prepend(path);
    while (m_paths.size() > maxRecentFiles)
        m_paths.removeLast();
    changed();
}

void RecentFiles::remove(const QString& path)
{
    if (m_paths.removeAll(path) > 0)
        changed();
}

void RecentFiles::changed()
{
    QSettings().setValue(settingsKey, m_paths);
    rebuildMenu();
}

void RecentFiles::rebuildMenu()
{
    m_menu->clear();
    int n = 0;
    const QStringList texts = labels(m_paths);
    for (const QString& path : std::as_const(m_paths)) {
        QString text = texts[n];
        text.replace(QLatin1Char('&'), QStringLiteral("&&")); // a folder "R&D" is not an accelerator
        ++n;
        const QString label =
            n < 10 ? QStringLiteral("&%1  %2").arg(n).arg(text) : QStringLiteral("%1  %2").arg(n).arg(text);
        auto* action = m_menu->addAction(label, this, [this, path] { emit openRequested(path); });
        action->setToolTip(QDir::toNativeSeparators(path));
        action->setStatusTip(QDir::toNativeSeparators(path));
        action->setData(path);
    }
    if (m_paths.isEmpty()) {
        m_menu->addAction(tr("No recent models"))->setEnabled(false);
    } else {
        m_menu->addSeparator();
        m_menu->addAction(tr("&Clear Recent Models"), this, [this] {
            m_paths.clear();
            changed();
        });
    }
}

} // namespace qs
