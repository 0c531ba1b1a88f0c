#pragma once
// Command line of the GUI: `quantscope [PATH] [--screenshot OUT.png [--view NAME] [--size WxH]]`.
// With --screenshot the window is rendered offscreen (QWidget::grab) once the model has loaded, saved,
// and the application quits: scripts/screenshots.sh regenerates docs/screenshots/ this way.

class QApplication;

namespace qs {

// Sets application name/organisation (used by QSettings), parses arguments, shows the main window and
// runs the event loop.
int runApplication(QApplication& app);

} // namespace qs
