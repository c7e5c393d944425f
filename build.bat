@echo off
rem Builds the release folder: removes it, then copies into it what the server needs
rem and nothing else. Nothing is downloaded here; run.bat installs the pinned
rem requirements on its first start.
rem
rem     build.bat [DEST]        DEST defaults to .\release
rem     cd release && run.bat >> log.log 2>&1
rem
rem The Windows twin of build.sh; tests/test_release.py checks that both copy the same
rem files.
setlocal EnableExtensions
cd /d "%~dp0" || goto :fail
set "ROOT=%~dp0"
set "DEST=%~f1"
if "%~1"=="" set "DEST=%ROOT%release"

rem Refuse a DEST whose removal would take the sources (or the whole disk) with it.
rem DEST is a full path, so it can only occur in ROOT as ROOT's beginning.
set "UNDER=%DEST%\"
if "%DEST:~-1%"=="\" set "UNDER=%DEST%"
call set "TAIL=%%ROOT:%UNDER%=%%"
if /i not "%TAIL%"=="%ROOT%" goto :refuse

for %%s in (wsgi.py requirements.txt imchat view asset deploy\run deploy\run.bat deploy\env.sample deploy\nginx-imchat.conf deploy\imchat.service) do (
  if not exist "%%s" (
    echo build.bat: missing %ROOT%%%s 1>&2
    exit /b 1
  )
)

if exist "%DEST%" rd /s /q "%DEST%"
if exist "%DEST%" goto :fail
md "%DEST%" || goto :fail
md "%DEST%\deploy" || goto :fail

copy /y wsgi.py "%DEST%\wsgi.py" >nul || goto :fail
copy /y requirements.txt "%DEST%\requirements.txt" >nul || goto :fail
call :tree imchat "%DEST%\imchat" || goto :fail
call :tree view "%DEST%\view" || goto :fail
call :tree asset "%DEST%\asset" || goto :fail
copy /y deploy\run "%DEST%\run" >nul || goto :fail
copy /y deploy\run.bat "%DEST%\run.bat" >nul || goto :fail
copy /y deploy\env.sample "%DEST%\env.sample" >nul || goto :fail
copy /y deploy\nginx-imchat.conf "%DEST%\deploy\nginx-imchat.conf" >nul || goto :fail
copy /y deploy\imchat.service "%DEST%\deploy\imchat.service" >nul || goto :fail

echo built %DEST%
echo start it with: cd /d "%DEST%" ^&^& run.bat ^>^> log.log 2^>^&1
exit /b 0

rem Copies a folder tree without bytecode caches. robocopy's exit codes below 8 mean
rem success (1: files copied).
:tree
robocopy "%~1" "%~2" /e /xd __pycache__ /njh /njs /nfl /ndl /np >nul
if errorlevel 8 exit /b 1
exit /b 0

:refuse
echo build.bat: refusing to build into %DEST%: it holds the sources 1>&2
exit /b 1

:fail
echo build.bat: failed building %DEST% 1>&2
exit /b 1
