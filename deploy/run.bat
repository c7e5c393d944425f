@echo off
rem Starts imchat from this release folder, whatever the current directory:
rem
rem     run.bat >> log.log 2>&1
rem
rem The Windows twin of `run`: reads `env` beside it (NAME=value lines; see env.sample)
rem for any IMCHAT_* setting the environment does not already set, makes .venv beside it
rem on the first start (or reuses it), installs the pinned requirements.txt whenever that
rem file changed, then runs the gevent server. Ctrl+C stops it gracefully.
rem
rem     run.bat --install-only    prepare .venv and exit
rem
rem IMCHAT_VENV=C:\path\to\venv  use that virtual environment as it is
rem PYTHON=py -3.11              the interpreter that creates .venv (default py -3)
setlocal EnableExtensions
cd /d "%~dp0" || exit /b 1

if not exist env goto :venv
for /f "usebackq eol=# tokens=1,* delims==" %%a in ("env") do (
  if not defined %%a set "%%a=%%b"
)

:venv
if defined IMCHAT_VENV (
  set "PY=%IMCHAT_VENV%\Scripts\python.exe"
  goto :check_venv
)
set "PY=.venv\Scripts\python.exe"
if exist "%PY%" goto :install
if not defined PYTHON set "PYTHON=py -3"
echo %date% %time% INFO creating the virtual environment %~dp0.venv
%PYTHON% -m venv .venv
if errorlevel 1 (
  rmdir /s /q .venv 2>nul
  echo %date% %time% ERROR could not create .venv with "%PYTHON%": install Python 3.11 or newer 1>&2
  exit /b 1
)

:install
fc /b requirements.txt .venv\requirements.installed >nul 2>&1
if not errorlevel 1 goto :ready
echo %date% %time% INFO installing requirements.txt into .venv
"%PY%" -m pip install -q --disable-pip-version-check -r requirements.txt
if errorlevel 1 (
  echo %date% %time% ERROR pip could not install requirements.txt ^(see above^) 1>&2
  exit /b 1
)
copy /y requirements.txt .venv\requirements.installed >nul || exit /b 1
goto :ready

:check_venv
if not exist "%PY%" (
  echo %date% %time% ERROR IMCHAT_VENV=%IMCHAT_VENV% has no Scripts\python.exe 1>&2
  exit /b 1
)

:ready
if "%~1"=="--install-only" (
  echo %date% %time% INFO the virtual environment is ready
  exit /b 0
)
"%PY%" wsgi.py
exit /b %errorlevel%
