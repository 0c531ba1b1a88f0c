#pragma once
// The one place where every running job shows: a row per job in the status bar with its title, a
// progress bar, the ETA and a cancel button. Rows appear when the runner starts a job and go away when it
// finishes; several jobs can run at once.

#include <QHash>
#include <QWidget>

class QHBoxLayout;
class QLabel;
class QProgressBar;
class QToolButton;

namespace qs {

class JobHandle;
class JobRunner;

class JobArea final : public QWidget {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(JobArea)

public:
    explicit JobArea(JobRunner* runner, QWidget* parent = nullptr);

    int jobCount() const { return int(m_rows.size()); }
    // For tests: the cancel button of the row showing the job titled `title` (nullptr when none).
    QToolButton* cancelButton(const QString& title) const;
    QProgressBar* progressBar(const QString& title) const;
    QString etaText(const QString& title) const;

    // "1:05 left", "12 s left", "" when unknown.
    static QString formatEta(double seconds);

private:
    struct Row {
        QWidget* widget = nullptr;
        QLabel* label = nullptr;
        QProgressBar* bar = nullptr;
        QToolButton* cancel = nullptr;
    };
    void addJob(JobHandle* handle);
    void update(JobHandle* handle);
    void removeJob(JobHandle* handle);
    const Row* rowFor(const QString& title) const;

    QHBoxLayout* m_layout = nullptr;
    QHash<JobHandle*, Row> m_rows;
};

} // namespace qs
