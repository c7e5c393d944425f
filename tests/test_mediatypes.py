"""Recognising uploaded media (imchat.service.mediatypes), without a server: what a
file's first bytes show, and which client names and extensions pass."""
import os

import pytest

from imchat.service.errors import BadRequest, UnsupportedMediaType
from imchat.service.mediatypes import (check_client_extension, check_client_name,
                                       sniff_media_type)

DATA = os.path.join(os.path.dirname(__file__), 'data', 'upload')


def sample(name):
    with open(os.path.join(DATA, name), 'rb') as f:
        return f.read()


def test_webm_and_mp4_recordings_are_told_apart_by_their_tracks():
    assert sniff_media_type(sample('voice.webm')).mime == 'audio/webm'
    assert sniff_media_type(sample('clip.webm')).mime == 'video/webm'
    assert sniff_media_type(sample('voice.m4a')).mime == 'audio/mp4'
    assert sniff_media_type(sample('clip.mp4')).mime == 'video/mp4'
    # Cut short before its track list, a WebM is still a WebM (served as video).
    assert sniff_media_type(sample('voice.webm')[:40]).mime == 'video/webm'


def test_text_pretending_to_be_media_is_not_recognised():
    assert sniff_media_type(b'<!doctype html><html></html>') is None
    assert sniff_media_type(b'') is None


def test_mp4_boxes_nested_past_any_real_file_are_refused():
    box = b''
    for _ in range(20):
        box = (8 + len(box)).to_bytes(4, 'big') + b'moov' + box
    head = b'\x00\x00\x00\x18ftypisom' + bytes(12) + box
    with pytest.raises(BadRequest):
        sniff_media_type(head)


@pytest.mark.parametrize('name', ['blob', 'photo.PNG', 'C:\\fakepath\\voice.opus', None])
def test_client_names_with_an_accepted_extension_or_none_pass(name):
    check_client_name('file', name)


@pytest.mark.parametrize('name', ['page.html', 'dir/drawing.svg', 'x.png.exe'])
def test_client_names_with_another_extension_are_refused_naming_the_field(name):
    with pytest.raises(UnsupportedMediaType) as refused:
        check_client_name('file', name)
    assert refused.value.field == 'file'


def test_a_filetype_is_checked_with_or_without_its_dot():
    check_client_extension('filetype', '.mp3')
    check_client_extension('filetype', 'jpeg')
    with pytest.raises(UnsupportedMediaType):
        check_client_extension('filetype', '.svg')
