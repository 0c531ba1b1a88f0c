#pragma once
// The recently opened models: a most-recent-first list kept in QSettings ("recentFiles") and shown as a
// menu whose entries ask to open their model.

#include <QObject>
#include <QStringList>

class QMenu;

namespace qs {

class RecentFiles final : public QObject {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(RecentFiles)

public:
    // Fills MENU from the settings.
    explicit RecentFiles(QMenu* menu, QObject* parent = nullptr);

    QStringList paths() const { return m_paths; }
    void add(const QString& path);
    void remove(const QString& path);

    // The menu texts (without the &N accelerator): the file name, and where two entries share a file name
    // ("model.safetensors" of two checkpoints) the folders that tell them apart.
    static QStringList labels(const QStringList& paths);

signals:
    void openRequested(const QString& path);

private:
    void changed();
    void rebuildMenu();

    QMenu* m_menu = nullptr;
    QStringList m_paths;
};

} // namespace qs
