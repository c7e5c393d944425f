// The original client's request helpers, in its shape: form fields, no token on HTTP
// (the login cookie rides along), and callbacks only on HTTP 200 or 304.
var util = {
  post: function (uri, data) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', '//' + location.host + '/' + uri, true);
      xhr.setRequestHeader('Content-type', 'application/x-www-form-urlencoded');
      xhr.onreadystatechange = function () {
        if (xhr.readyState == 4 && (xhr.status == 200 || xhr.status == 304)) {
          resolve(JSON.parse(xhr.responseText));
        }
      };
      var parts = [];
      for (var k in data) parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(data[k]));
      xhr.send(parts.join('&'));
    });
  }
};

function uploadfile(uri, dom, callback) {
  var formdata = new FormData();
  formdata.append('file', dom.files[0]);
  var xhr = new XMLHttpRequest();
  var url = 'http://' + location.host + '/' + uri;
  xhr.open('POST', url, true);
  xhr.onreadystatechange = function () {
    if (xhr.readyState == 4 && xhr.status == 200) {
      callback(JSON.parse(xhr.responseText));
    }
  };
  xhr.send(formdata);
}

function toast(msg) { document.getElementById('toast').textContent = msg; }
function userinfo(o) {
  if (o) sessionStorage.setItem('userinfo', JSON.stringify(o));
  return JSON.parse(sessionStorage.getItem('userinfo') || 'null');
}
function userId() { return userinfo().id; }
