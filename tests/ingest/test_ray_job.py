def test_an_actor_keeps_to_the_cpus_ray_gives_it(monkeypatch):
    """Ray hands an actor its CPUs as OMP_NUM_THREADS; the detector's threads must follow, not every core."""
    import cv2

    from lookalike.faces.detect import create_detector
    from lookalike.ingest.distribute import _RayFinder
    from lookalike.ingest.find import FindSettings

    before = cv2.getNumThreads()
    settings = FindSettings(create_detector("yunet").params, "arcface112")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        worker = _RayFinder(settings)
        assert cv2.getNumThreads() == 1
        det = worker.analyzer.detector
        if det.engine == "onnxruntime":
            assert det._engine.session.get_session_options().intra_op_num_threads == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2,1")  # OpenMP's nested form: the outer count
        _RayFinder(settings)
        assert cv2.getNumThreads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "many")  # not a number: left alone, no traceback
        _RayFinder(settings)
    finally:
        cv2.setNumThreads(before)
