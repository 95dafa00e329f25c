"""Video: faces followed across a synthetic clip (tests/video_clips.py), smoothed answers, the
annotated MP4 / JSON / CSV, limits and bad files, and the command line."""
import io
import json
import wave
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

import video_clips as clips
from hub.__main__ import main
from hub.predict import Predictor
from hub.tracking import FaceTracker
from hub.video import BadVideo, VideoLimits, analyze_video


@pytest.fixture(scope="module")
def predictor(tiny_manifest):
    return Predictor(tiny_manifest)


@pytest.fixture(scope="module")
def clip_frames():
    return clips.frames()


@pytest.fixture(scope="module")
def clip_path(clip_frames, tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "crossing.mp4"
    path.write_bytes(clips.mp4_bytes(clip_frames))
    return path


@pytest.fixture(scope="module")
def analysis(clip_path, predictor):
    return analyze_video(clip_path, predictor)


def who(box, frame: int) -> list[str]:
    """The synthetic heads whose tile holds the centre of `box`."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return [name for name, (x1, y1, x2, y2) in clips.truth_boxes(frame).items() if x1 <= cx <= x2 and y1 <= cy <= y2]


def test_each_face_keeps_its_number_until_faces_cross(clip_frames, predictor):
    tracker = FaceTracker(predictor)
    numbers: dict[str, set[int]] = {}      # head -> numbers seen on it while no heads cross
    after_crossing: dict[str, set[int]] = {}
    for index, image in enumerate(clip_frames):
        faces = tracker.step(image, index / clips.FPS)
        assert len({face.number for face in faces}) == len(faces)  # one number per face in a frame
        for face in faces:
            heads = who(face.box, index)
            assert len(heads) >= 1, f"frame {index}: a box on no face"
            if len(heads) == 1 and not clips.crossing(index):
                target = after_crossing if index > 30 else numbers
                target.setdefault(heads[0], set()).add(face.number)
    assert sorted(numbers) == ["astro", "grace", "gray"]
    assert all(len(found) == 1 for found in numbers.values()), numbers         # stable before the crossing
    assert all(len(found) == 1 for found in after_crossing.values()), after_crossing  # and after it
    assert numbers["astro"] == {1}                                           # numbered in order of appearance
    assert sorted(n for found in numbers.values() for n in found) == [1, 2, 3]
    # MTCNN ran only on some frames: every k-th while the faces were settled, every frame around changes
    assert 10 < tracker.detections < len(clip_frames)


def test_video_file_gives_tracks_timelines_and_annotated_video(analysis, clip_path):
    import av

    assert analysis.info.width == clips.SIZE[0] and len(analysis.frames) == clips.FRAMES
    # three people; where the two bottom heads cross, one of them may come out with a new number
    assert 3 <= len(analysis.tracks) <= 4, [t["number"] for t in analysis.tracks]
    first = analysis.tracks[0]
    assert first["number"] == 1 and first["first_seen"] < 0.5 and 2.0 < first["last_seen"] < 3.2  # leaves at ~2.8 s
    assert {"gender", "age", "mood"} <= set(first) and analysis.errors == {}  # field has no model: not mentioned
    assert first["age"]["low"] <= first["age"]["years"] <= first["age"]["high"]
    assert abs(sum(first["mood"]["probs"].values()) - 1) < 0.01

    result = analysis.as_dict()
    json.dumps(result)
    assert result["frames"][20]["faces"][0]["number"] == 1 and "mood" in result["frames"][20]["faces"][0]
    assert "Followed" in result["message"]

    table = analysis.to_csv().splitlines()
    assert table[0].startswith("frame,time,face,x1,y1,x2,y2,") and "mood_happy" in table[0] and "age_low" in table[0]
    assert len(table) - 1 == sum(len(f["faces"]) for f in analysis.frames)

    with av.open(io.BytesIO(analysis.video)) as container:  # the annotated copy: same size, every frame
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == clips.FRAMES and decoded[0].shape == (240, 320, 3)
    box = [round(v) for v in result["frames"][20]["faces"][0]["box"]]
    edge = decoded[20][box[1] + 5: box[3] - 5, max(0, box[0] - 1): box[0] + 2].reshape(-1, 3).mean(axis=0)
    assert edge[0] > 180 and edge[1] > 150 and edge[2] < 110, edge  # the yellow box is drawn


def test_smoothed_answers_change_less_than_raw_ones(analysis):
    raw_steps, smooth_steps, raw_age, smooth_age = [], [], [], []
    last: dict[int, tuple] = {}
    for record in analysis.frames:
        for face in record["faces"]:
            if "raw" not in face:
                continue
            raw = np.array(list(face["raw"]["mood"]["probs"].values()))
            smooth = np.array(list(face["mood"]["probs"].values()))
            if face["number"] in last:
                prev_raw, prev_smooth, prev_age_raw, prev_age = last[face["number"]]
                raw_steps.append(np.abs(raw - prev_raw).sum())
                smooth_steps.append(np.abs(smooth - prev_smooth).sum())
                raw_age.append(abs(face["raw"]["age"]["years"] - prev_age_raw))
                smooth_age.append(abs(face["age"]["years"] - prev_age))
            last[face["number"]] = (raw, smooth, face["raw"]["age"]["years"], face["age"]["years"])
    assert len(raw_steps) > 20
    assert np.mean(raw_steps) > 0  # the raw answers do move
    assert np.mean(smooth_steps) < 0.6 * np.mean(raw_steps)
    assert np.mean(smooth_age) < 0.8 * np.mean(raw_age)


# --- limits and bad files ---------------------------------------------------------------------

def header_only_video(path, width: int, height: int, seconds: int):
    """Two blank frames whose header says width x height and `seconds` long: a few kB, no long encode."""
    import av

    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(2, seconds))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(2):
            frame = av.VideoFrame(width, height, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def audio_only(path):
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(np.zeros(8000, dtype=np.int16).tobytes())
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, clip_path):
    folder = tmp_path_factory.mktemp("bad_videos")
    files = {"corrupt": folder / "corrupt.mp4", "audio": audio_only(folder / "sound.wav"),
             "huge": header_only_video(folder / "4k_10min.mp4", 3840, 2160, 600),
             "long": header_only_video(folder / "long.mp4", 320, 240, 600), "empty": folder / "empty.mp4",
             "cut": folder / "cut.mp4"}
    files["corrupt"].write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    files["empty"].write_bytes(b"")
    files["cut"].write_bytes(clip_path.read_bytes()[: clip_path.stat().st_size // 2])  # moov at the end is lost
    return files


@pytest.mark.parametrize("name, message", [
    ("corrupt", "not a video we can read"), ("audio", "no video track"), ("empty", "The file is empty"),
    ("huge", "3840x2160 pixels; videos up to 1920 pixels"), ("long", "lasts 10:00.0; videos up to 1:00.0"),
    ("cut", "not a video we can read")])
def test_bad_files_get_a_plain_message(bad_files, predictor, name, message):
    with pytest.raises(BadVideo, match=message.replace("(", r"\(").replace(")", r"\)")):
        analyze_video(bad_files[name], predictor, limits=VideoLimits())


def test_limits_are_checked_from_the_header(clip_path, predictor):
    with pytest.raises(BadVideo, match="lasts 4.0 s; videos up to 1.0 s"):
        analyze_video(clip_path, predictor, limits=VideoLimits(seconds=1.0))
    with pytest.raises(BadVideo, match="videos up to 0 MB"):
        analyze_video(clip_path, predictor, limits=VideoLimits(bytes=1000))
    with pytest.raises(BadVideo, match="320x240 pixels; videos up to 200 pixels"):
        analyze_video(clip_path.read_bytes(), predictor, limits=VideoLimits(side=200))  # bytes work too


def test_video_without_faces(predictor):
    blank = [Image.new("RGB", (160, 120), (30 * i % 255, 80, 90)) for i in range(6)]
    analysis = analyze_video(clips.mp4_bytes(blank), predictor)
    assert analysis.tracks == [] and analysis.message.startswith("No face found in this video.")
    assert len(analysis.frames) == 6 and analysis.video


# --- command line ---------------------------------------------------------------------------------

def test_cli_one_record_per_face_or_per_frame(capsys, clip_frames, tiny_manifest_path, astronaut, tmp_path):
    short = tmp_path / "short.mp4"
    short.write_bytes(clips.mp4_bytes(clip_frames[:16]))  # the three heads come in, none cross yet
    code = main(["predict", str(short), "--json", "--task", "age", "--manifest", str(tiny_manifest_path)])
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["number"] for r in records] == [1, 2, 3]
    assert set(records[0]) >= {"path", "first_seen", "last_seen", "frames", "age"} and "mood" not in records[0]
    assert "16/16" in err  # the progress bar counts frames

    code = main(["predict", str(short), "--json", "--frames", "--task", "mood",
                 "--manifest", str(tiny_manifest_path)])
    frames = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and [f["frame"] for f in frames] == list(range(16))
    assert frames[8]["faces"][0]["number"] == 1 and "mood" in frames[8]["faces"][0]

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(short.read_bytes())
    astronaut.save(folder / "photo.jpg")
    (folder / "broken.mov").write_bytes(b"not a video")
    code = main(["predict", str(folder), "--task", "gender", "--manifest", str(tiny_manifest_path)])
    out, err = capsys.readouterr()
    assert code == 1 and "1 of 3 files could not be read" in err
    assert "broken.mov: error: This file is not a video we can read." in out
    assert "clip.mp4: face 1 from" in out and "photo.jpg: Found 1 face" in out
