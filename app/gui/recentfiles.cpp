#include "app/gui/recentfiles.h"

#include <QDir>
#include <QFileInfo>
#include <QMenu>
#include <QSettings>

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
    for (const QString& path : std::as_const(m_paths)) {
        ++n;
        const QFileInfo info(path);
        const QString label = n < 10 ? QStringLiteral("&%1  %2").arg(n).arg(info.fileName())
                                     : QStringLiteral("%1  %2").arg(n).arg(info.fileName());
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
