#pragma once
// The ways to choose a model to open: the File menu's Open, Open Folder, Open Sample Model and Open Recent
// entries (with their dialogs and the last directory they used, kept in QSettings), and files dropped on
// the window. They all end in openRequested(path); the window opens it.

#include "app/gui/errorpresenter.h"

#include <QObject>
#include <functional>

class QAction;
class QMenu;
class QMimeData;
class QWidget;

namespace qs {

class RecentFiles;

class OpenActions final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(OpenActions)

public:
    // Adds the entries to fileMenu; dialogs open on dialogParent, which also owns this.
    OpenActions(QMenu* fileMenu, ErrorPresenter presentError, QWidget* dialogParent);

    // Open, Open Folder, Open Sample Model (for the tool bar).
    QList<QAction*> toolBarActions() const { return m_toolBarActions; }
    QMenu* recentMenu() const { return m_recentMenu; }
    RecentFiles* recent() const { return m_recent; }
    QString lastDirectory() const { return m_lastDir; }

    // Where the bundled sample model is (source tree or installed), empty when missing.
    static QString samplePath();
    // The path to open for dropped files, empty when they are not local files.
    static QString pathForDrop(const QMimeData* mime);

signals:
    void openRequested(const QString& path);
    void lastDirectoryChanged(const QString& dir);

private:
    void openFileDialog();
    void openFolderDialog();
    void chosen(const QString& path);

    QWidget* m_dialogParent = nullptr;
    QMenu* m_recentMenu = nullptr;
    RecentFiles* m_recent = nullptr;
    QList<QAction*> m_toolBarActions;
    QString m_lastDir;
};

} // namespace qs
